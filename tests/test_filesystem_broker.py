"""The embedded broker (filesystem://) never shows a consumer a half-written message."""

import json
import threading

from kombu import Connection

from config.backends.filesystem_broker import Transport


def test_a_reader_only_ever_sees_whole_messages(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(tmp_path)}
    seen, broken, done = [], [], threading.Event()

    def read_like_the_worker():
        # What kombu's consumer does: list the folder, take every "<...>.<queue>.msg" file, parse it.
        while not done.is_set() or any(folder.iterdir()):
            for path in sorted(folder.iterdir()):
                if path.name.partition(".")[2] != "q.msg":
                    continue
                try:
                    payload = path.read_bytes()
                    path.unlink()
                except FileNotFoundError:
                    continue
                try:
                    seen.append(json.loads(payload))
                except ValueError:
                    broken.append(payload)

    reader = threading.Thread(target=read_like_the_worker)
    reader.start()
    with Connection("filesystem://", transport_options=options) as connection:
        assert isinstance(connection.transport, Transport)  # the alias points at ours
        queue = connection.SimpleQueue("q")
        for n in range(300):
            queue.put({"n": n, "padding": "x" * 4096})
    done.set()
    reader.join(timeout=30)
    assert broken == []
    assert len(seen) == 300
