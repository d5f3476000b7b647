"""kombu's filesystem transport, with messages written atomically.

The embedded default's broker is a folder of message files (``filesystem://``). kombu writes a
message by opening its final name and then writing to it, so a worker listing the folder at that
moment can take the empty file; it then fails to parse it and the worker stops ("Unrecoverable
error: JSONDecodeError"). Found by the contract fuzzer, with two web processes sending tasks while a
worker consumed them. Here a message is written under a name the reader ignores and renamed into
place, which is atomic within a folder: the reader sees a whole message or none.

Installed under kombu's ``filesystem`` alias by ``config/celery.py``, so the URL stays ``filesystem://``.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.partial"  # "<...>.<queue>.msg.partial" is no queue's message
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
    # A folder has no host: without this, kombu fills in "localhost" and warns "No hostname was
    # supplied" on every start of every process that connects.
    default_connection_params = {"port": 0, "hostname": None}
