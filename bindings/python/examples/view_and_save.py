"""View a shared screen and save frames as PNG (needs Pillow): python view_and_save.py ws://HOST:8080/ws CODE"""

import asyncio
import sys

import peerdesk


async def main(server: str, code: str) -> None:
    viewer = await peerdesk.join(server, code, "python example")
    for i, frame in enumerate(viewer.frames(count=30)):
        if i % 10 == 0:
            from PIL import Image

            Image.frombytes("RGBA", (frame.width, frame.height), frame.rgba()).save(f"frame-{i:03}.png")
        frame.release()
    await viewer.leave()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
