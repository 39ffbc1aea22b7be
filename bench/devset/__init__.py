"""A cut-out development set with exact ground truth, generated from committed sources.

Photographed objects with known alpha (`sources/fg/`, Tux Paint's photo stamps) are
placed on real photographs of rooms, floors, tables, walls and landscapes
(`sources/bg/`), with a contact shadow, the scene's colour cast, depth of field,
sensor noise and JPEG compression, as a phone photo of a product on a surface would
have them; a share of cases use a studio sweep instead, and a share are close-ups
where the product runs off the frame. Every case is `I = a F + (1 - a) B` with the
placed alpha as ground truth. Deterministic for a seed; nothing is downloaded.

Provenance and licences of the sources: `sources/LICENSES.md`.
"""

from bench.devset.generate import DevCase, make_devset

__all__ = ["DevCase", "make_devset"]
