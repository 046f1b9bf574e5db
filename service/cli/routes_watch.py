"""The routes file as `run` watches it, so that a saved change reaches the workers (SIGHUP).

    watch = RoutesWatch(settings.routes_file)
    watch.changed()      called every look (run: 0.2 s); True once per change of the content

A look is one stat. The file is read and hashed only when its stat (modification time, size,
inode) changed and then held still for one look, so an editor that truncates and then writes,
or writes a temporary file and renames it, counts once, written. A change is a content hash
unlike the last one reported: a touch, or a save without edits, is none. A file that went
missing or cannot be read is a change too: the workers refuse it, say why, and keep their routes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

Stat = tuple[int, int, int] | None


class RoutesWatch:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stat = self._stat()
        self.digest = self._digest()
        self.settling = False

    def changed(self) -> bool:
        """True once for each change of the content, when it has held still for a look."""
        stat = self._stat()
        if stat != self.stat:
            self.stat, self.settling = stat, True
            return False
        if not self.settling:
            return False
        self.settling = False
        digest = self._digest()
        if digest == self.digest:
            return False
        self.digest = digest
        return True

    def _stat(self) -> Stat:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size, found.st_ino

    def _digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None
