import json
import sys

from babel.messages.pofile import read_po, write_po

T = json.load(open(sys.argv[1]))
p = "app/translations/zh_TW/LC_MESSAGES/messages.po"
cat = read_po(open(p, "rb"))
missing = []
for m in cat:
    if m.id and not m.string:
        if m.id in T:
            m.string = T[m.id]
        else:
            missing.append(m.id)
write_po(open(p, "wb"), cat, width=100)
print("missing:", missing)
