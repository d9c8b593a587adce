"""Active content taken out of a PDF someone else made, before we derive a copy
of it: scripts, actions that run or open something, and embedded files.

A PDF can carry JavaScript (document level, on opening, on a page's opening or
closing, on a form field's keystroke, behind a link, an annotation or a
bookmark, chained after a harmless jump by ``/Next``), Launch actions that
start a program, embedded files, and XFA forms with their own scripts. None of
it belongs in a stamped copy made for reading, so :func:`disarm` removes it all
and keeps what only shows or navigates within the document (a link that jumps
to another page keeps its jump).

It works on a parsed document in memory (a ``pypdf.PdfReader``'s objects), so a
copy cloned from it afterwards takes none of the removed objects along; the
file the reader parsed is never touched.
"""

from __future__ import annotations

from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

# Keys whose value is active content, wherever they appear: additional actions
# (document, page, field, annotation), the open action, document JavaScript and
# embedded files in the name tree, a file specification's embedded file streams,
# associated files (PDF 2.0), XFA forms, and a portfolio's presentation.
ACTIVE_KEYS = ("/AA", "/OpenAction", "/JavaScript", "/JS", "/EmbeddedFiles", "/EF", "/AF", "/XFA", "/Collection")
# Annotations that exist to play, run or hand over something.
ACTIVE_ANNOTATIONS = ("/FileAttachment", "/Sound", "/Movie", "/Screen", "/RichMedia", "/3D")
# The one kind of action kept: a jump within the document.
KEPT_ACTIONS = ("/GoTo",)


def disarm(reader: PdfReader) -> int:
    """Remove every piece of active content reachable from the document's
    catalogue, in the reader's objects; return how many were removed."""
    removed = 0
    seen: set[tuple[int, int]] = set()
    pending: list = [reader.trailer["/Root"]]
    while pending:
        item = pending.pop()
        if isinstance(item, IndirectObject):
            key = (item.idnum, item.generation)
            if key in seen:
                continue
            seen.add(key)
            item = item.get_object()
        if isinstance(item, DictionaryObject):  # stream dictionaries too
            removed += _disarm_dictionary(item)
            pending.extend(value for name, value in item.items() if name != "/Parent")
        elif isinstance(item, ArrayObject):
            pending.extend(item)
    return removed


def _disarm_dictionary(obj: DictionaryObject) -> int:
    removed = 0
    for key in ACTIVE_KEYS:
        if key in obj:
            del obj[key]
            removed += 1
    action = obj.get("/A")
    action = action.get_object() if action is not None else None
    if isinstance(action, DictionaryObject) and "/S" in action:  # (a structure element's /A is no action)
        if action["/S"] not in KEPT_ACTIONS:
            del obj["/A"]
            removed += 1
        elif "/Next" in action:  # a jump may chain on to any other action
            del action["/Next"]
            removed += 1
    annotations = obj.get("/Annots")
    if annotations is not None:
        annotations = annotations.get_object()
        if isinstance(annotations, ArrayObject):
            kept = [a for a in annotations if _subtype(a) not in ACTIVE_ANNOTATIONS]
            if len(kept) != len(annotations):
                removed += len(annotations) - len(kept)
                annotations[:] = kept
    return removed


def _subtype(annotation) -> str | None:
    annotation = annotation.get_object()
    return annotation.get("/Subtype") if isinstance(annotation, DictionaryObject) else None
