"""{% icon %}: Lucide's SVG inlined, hidden from assistive technology, and a missing icon fails at compile time."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.template.loader import get_template

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_an_icon_is_inline_svg_hidden_from_screen_readers_with_its_classes():
    html = Template('{% load icons %}<button>{% icon "copy" class="btn__icon" %}Copy</button>').render(Context())

    assert html.startswith('<button><svg class="icon icon--copy btn__icon" viewBox="0 0 24 24"')
    assert 'aria-hidden="true" focusable="false"' in html and 'stroke="currentColor"' in html
    assert "<rect" in html and "<!--" not in html and "lucide" not in html


def test_a_name_from_a_variable_renders_too():
    assert 'icon--key-round' in Template("{% load icons %}{% icon name %}").render(Context({"name": "key-round"}))


@pytest.mark.parametrize("source", ['{% icon "no-such-icon" %}', '{% icon "../secret" %}', "{% icon %}",
                                    '{% icon "copy" title="x" %}'])
def test_a_bad_icon_fails_when_the_template_compiles(source):
    with pytest.raises(TemplateSyntaxError):
        Template("{% load icons %}" + source)


@pytest.mark.parametrize("name", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html")
                                        if "{% icon" in p.read_text()))
def test_every_template_that_uses_icons_compiles(name):
    get_template(name)  # a misspelt icon name raises here, not in front of a user
