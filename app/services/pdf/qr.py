"""A QR code as vector graphics in a PDF."""

from __future__ import annotations

import segno
from reportlab.lib import colors
from reportlab.platypus import Flowable


class QrFlowable(Flowable):
    """A vector QR code (segno's matrix) on a white square with its quiet zone."""

    def __init__(self, qr: segno.QRCode, size: float, border: int = 4):
        super().__init__()
        self.matrix = qr.matrix
        self.width = self.height = size
        self.border = border

    def draw(self):
        canvas = self.canv
        n = len(self.matrix)
        module = self.width / (n + 2 * self.border)
        canvas.saveState()
        canvas.setFillColor(colors.white)
        canvas.rect(0, 0, self.width, self.height, fill=1, stroke=0)
        canvas.setFillColor(colors.black)
        for row_no, row in enumerate(self.matrix):
            y = self.height - (self.border + row_no + 1) * module
            col = 0
            while col < n:
                if not row[col]:
                    col += 1
                    continue
                start = col
                while col < n and row[col]:
                    col += 1
                x = (self.border + start) * module
                # a hair wider than the module so adjacent rows leave no seams
                canvas.rect(x, y, (col - start) * module + 0.01, module + 0.01, fill=1, stroke=0)
        canvas.restoreState()
