"""The `products` partitions: one dynamic partition per product id."""

import dagster as dg

products_partitions = dg.DynamicPartitionsDefinition(name="products")
