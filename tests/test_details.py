import pytest

from adgen_dagster.imaging.details import DetailsError, ProductDetails, parse_details


def test_no_sidecar_gives_defaults():
    d = parse_details(None)
    assert d == ProductDetails() and d.display_headline == ""


def test_fields_are_parsed_and_numbers_become_text():
    d = parse_details(b'{"name": "Mug", "price": 12.5, "palette": "ffeedd, #112233", "extra": 1}')
    assert d.display_headline == "Mug" and d.price == "12.5" and d.palette == ["#ffeedd", "#112233"]


@pytest.mark.parametrize(
    "raw,needle",
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"headline": ["a", "b"]}', "headline"),
        (b'{"palette": ["red"]}', "palette"),
        (b"\xff\xfe\x00", "not valid UTF-8 JSON"),
        (b'{"headline": "' + b"x" * 500 + b'"}', "headline"),
    ],
)
def test_bad_sidecars_name_the_problem(raw, needle):
    with pytest.raises(DetailsError) as err:
        parse_details(raw, source="shoe.jpg.json")
    assert str(err.value).startswith("shoe.jpg.json: ") and needle in str(err.value)


def test_html_text_is_kept_verbatim_for_later_escaping():
    d = parse_details('{"headline": "<script>alert(1)</script> & \\"q\\""}')
    assert d.headline == '<script>alert(1)</script> & "q"'
