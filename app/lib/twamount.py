"""Amounts of money in capital Chinese numerals (大寫), as receipts and cheques write
them: 150 -> 壹佰伍拾, so ``capital_ntd(150)`` is 新臺幣壹佰伍拾元整."""

DIGITS = "零壹貳參肆伍陸柒捌玖"
UNITS = ("仟", "佰", "拾", "")
GROUPS = ((10**8, "億"), (10**4, "萬"), (1, ""))


def capital(n: int) -> str:
    """A whole number from 0 to 999,999,999,999 in capital numerals (a zero written once between digits)."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < 10**12:
        raise ValueError("an amount from 0 to 999,999,999,999")
    if n == 0:
        return DIGITS[0]
    out, pending = "", False
    for size, big in GROUPS:
        group = n // size % 10**4
        if group == 0:
            pending = pending or bool(out)
            continue
        for i, unit in enumerate(UNITS):
            digit = group // 10 ** (3 - i) % 10
            if digit == 0:
                pending = pending or bool(out)
            else:
                out += (DIGITS[0] if pending else "") + DIGITS[digit] + unit
                pending = False
        out += big
    return out


def capital_ntd(n: int) -> str:
    return f"新臺幣{capital(n)}元整"
