"""PDF primitives shared by the query printouts, the report PDFs and the stamped
attachments: the embedded CJK font, numbered pages, the diagonal watermark, the
QR code, table column widths, and taking active content out of a PDF someone
else made (disarm). Each lives in its own module; nothing here knows what a
query or a report is."""
