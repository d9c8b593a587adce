"""PDF primitives shared by the query printouts and the report PDFs: the
embedded CJK font, numbered pages, the diagonal watermark, the QR code and
table column widths. Each lives in its own module; nothing here knows what a
query or a report is."""
