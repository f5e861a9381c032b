"""HTML mail to readable plain text, with the stdlib html.parser only.

Nothing is fetched: images show their alt text, links become "text (url)", scripts, styles and
other invisible elements are dropped. The result still goes through agent_tui.sanitize.clean_text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content is never shown to a reader of the mail.
_INVISIBLE = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "object",
                        "iframe", "select", "button"})
# Void elements never get an end tag, so they must not open an invisible region.
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "source", "track", "wbr"})
_BLOCK = frozenset({"address", "article", "aside", "blockquote", "dd", "details", "dialog", "div",
                    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
                    "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
                    "section", "summary", "table", "tr", "ul", "center"})
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._hidden_depth = 0
        self._pre_depth = 0
        self._links: list[tuple[str, int]] = []   # (href, index of the first chunk of its text)

    def _newline(self, count: int = 1) -> None:
        self.chunks.append("\n" * count)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self._hidden_depth += 1
            return
        if self._hidden_depth:
            return
        if tag == "br":
            self._newline()
        elif tag in ("p", "table", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"):
            self._newline(2)
        elif tag == "li":
            self._newline()
            self.chunks.append("- ")
        elif tag in _BLOCK:
            self._newline()
        elif tag in ("td", "th"):
            self.chunks.append(" ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and alt.strip():
                self.chunks.append(f"[{alt.strip()}]")
        elif tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            self._links.append((href, len(self.chunks)))
        if tag == "pre":
            self._pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID or tag not in _INVISIBLE:
            self.handle_starttag(tag, attrs)
            if tag not in _VOID:
                self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self._hidden_depth = max(0, self._hidden_depth - 1)
            return
        if self._hidden_depth:
            return
        if tag == "a" and self._links:
            href, start = self._links.pop()
            label = _SPACES.sub(" ", "".join(self.chunks[start:])).strip()
            if href.lower().startswith(_LINK_SCHEMES) and href not in label:
                shown = href[7:] if href.lower().startswith("mailto:") else href
                if shown != label:
                    self.chunks.append(f" ({shown})" if label else shown)
        elif tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        if tag in ("p", "table", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"):
            self._newline(2)
        elif tag in _BLOCK and tag != "li":         # the next item starts its own line
            self._newline()

    def handle_data(self, data: str) -> None:
        if self._hidden_depth:
            return
        if self._pre_depth:
            self.chunks.append(data)
        else:
            self.chunks.append(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """Readable text for an HTML body: paragraphs and line breaks kept, markup gone."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = [line.strip(" ") for line in "".join(extractor.chunks).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
