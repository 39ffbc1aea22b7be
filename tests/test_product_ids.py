import pytest

from adgen_dagster.product_ids import is_valid_product_id, product_id_for, romanize_hangul

HOSTILE = [
    "Red Shoe.JPG", "여름 셔츠.png", "../../etc/passwd", "a,b,c.jpg", ".hidden.jpg", ".jpg",
    "x" * 300 + ".jpg", "sub/dir/shoe.jpg", "  spaced  .png", "naïve café.jpg", "😀.png",
    "con.jpg", "shoe\\..\\evil.png", "-leading-dash.jpg", "_under.jpg", "",
]


def test_clean_names_keep_their_stem():
    assert product_id_for("red-shoe.jpg") == "red-shoe"
    assert product_id_for("sku_123.png") == "sku_123"


def test_same_stem_other_format_is_the_same_product():
    assert product_id_for("shoe.jpg") == product_id_for("shoe.png") == "shoe"


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_give_valid_ids(name):
    pid = product_id_for(name)
    assert is_valid_product_id(pid), (name, pid)
    assert len(pid) <= 64 and "/" not in pid and ".." not in pid and "," not in pid and " " not in pid


def test_ids_are_stable_and_unique_across_names():
    ids = [product_id_for(n) for n in HOSTILE]
    assert ids == [product_id_for(n) for n in HOSTILE]
    assert len(set(ids)) == len(ids)
    assert product_id_for("Shoe.jpg") != product_id_for("shoe.jpg")
    assert product_id_for("a b.jpg") != product_id_for("a_b.jpg") != product_id_for("a-b.jpg")


def test_hangul_is_romanised_readably():
    assert romanize_hangul("한글") == "hangeul"
    assert product_id_for("여름 셔츠.png").startswith("yeoreum-syeocheu-")
