"""A local SMTP server for the demo: every message is stored as an .eml file.

python -m app.simulators.mailcatcher --port 8025 --dir instance/mail
"""

import argparse
import asyncio
import pathlib
import time
import uuid

from aiosmtpd.controller import Controller


class SaveToFolder:
    def __init__(self, folder: pathlib.Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", default="instance/mail")
    args = parser.parse_args()
    controller = Controller(SaveToFolder(pathlib.Path(args.dir)), hostname=args.host, port=args.port)
    controller.start()
    print(f"mail catcher on {args.host}:{args.port}, saving to {args.dir}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
