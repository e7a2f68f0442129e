"""`{% icon "name" %}`: a Lucide icon (npm `lucide-static`) inlined as SVG.

Inline rather than `<img>`, so the icon takes the text colour (`currentColor`) and needs no request;
emoji were used before and render as empty boxes where no emoji font is installed. The icon is
decoration: it is hidden from assistive technology, so the element around it carries the name.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django import template
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# STATICFILES_DIRS serves node_modules/lucide-static/icons under this prefix.
ICON_DIR = "vendor/lucide"
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_BODY = re.compile(r"<svg\b[^>]*>(.*)</svg>", re.DOTALL)


class IconNotFound(LookupError):
    pass


@lru_cache(maxsize=256)
def icon_body(name: str) -> str:
    """The shapes inside a Lucide icon's <svg>, read once per process."""
    if not _NAME.match(name):
        raise IconNotFound(f"{name!r} is not an icon name (lower-case words joined by '-').")
    path = f"{ICON_DIR}/{name}.svg"
    found = finders.find(path)
    try:
        if found:
            with open(found, encoding="utf-8") as handle:
                source = handle.read()
        else:  # after collectstatic, without the npm folder
            with staticfiles_storage.open(path) as handle:
                source = handle.read().decode()
    except OSError as exc:
        if not finders.find(f"{ICON_DIR}/x.svg") and not staticfiles_storage.exists(f"{ICON_DIR}/x.svg"):
            raise IconNotFound("The icons (npm lucide-static) are not installed: run `npm install` "
                               "(`make` does it when package.json changes).") from exc
        raise IconNotFound(f"No Lucide icon named {name!r} ({path}); see https://lucide.dev/icons.") from exc
    match = _BODY.search(source)
    if match is None:
        raise IconNotFound(f"{path} is not an SVG file.")
    return " ".join(match.group(1).split())


def icon_svg(name: str, css_class: str = "") -> SafeString:
    classes = " ".join(filter(None, ["icon", f"icon--{name}", css_class]))
    return format_html(
        '<svg class="{}" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" '
        'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">{}</svg>',
        classes, mark_safe(icon_body(name)),  # Lucide's own file, from our static files: trusted markup
    )


class IconNode(template.Node):
    def __init__(self, name: template.base.FilterExpression, css_class: template.base.FilterExpression | None):
        self.name, self.css_class = name, css_class

    def render(self, context: template.Context) -> str:
        name = self.name.resolve(context)
        css_class = self.css_class.resolve(context) if self.css_class else ""
        return icon_svg(str(name), str(css_class or ""))


@register.tag
def icon(parser: template.base.Parser, token: template.base.Token) -> IconNode:
    """`{% icon "key" %}` or `{% icon "key" class="btn__icon" %}`. A literal name that has no icon
    fails when the template is compiled, so a typo can't ship."""
    bits = token.split_contents()
    if len(bits) not in (2, 3):
        raise template.TemplateSyntaxError('Use {% icon "name" %} or {% icon "name" class="extra" %}.')
    name = parser.compile_filter(bits[1])
    css_class = None
    if len(bits) == 3:
        key, _, value = bits[2].partition("=")
        if key != "class" or not value:
            raise template.TemplateSyntaxError(f'{{% icon %}} takes only class="…", not {bits[2]!r}.')
        css_class = parser.compile_filter(value)
    if bits[1][0] in "\"'" and bits[1][-1] == bits[1][0]:
        try:
            icon_body(bits[1][1:-1])
        except IconNotFound as exc:
            raise template.TemplateSyntaxError(str(exc)) from exc
    return IconNode(name, css_class)
