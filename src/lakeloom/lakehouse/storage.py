"""Where the workspace's files live: a local folder or an object store, through pyarrow.fs.

delta-rs reads and writes the tables itself; this module serves the rest (listing tables,
settings, tags, raw files) with the same storage options.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pyarrow.fs as pafs

__all__ = ["Storage"]


def _opt(options: Mapping[str, str], *names: str) -> str | None:
    lowered = {k.lower(): v for k, v in options.items()}
    for name in names:
        value = lowered.get(name.lower()) or os.environ.get(name.upper())
        if value:
            return value
    return None


@dataclass(frozen=True)
class Storage:
    """A root URI (``/path`` or ``s3://bucket/prefix``) plus the options to reach it."""

    root: str
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        """True for a plain folder."""
        return "://" not in self.root or self.root.startswith("file://")

    def uri(self, *parts: str) -> str:
        """The URI of a path below the root."""
        base = self.root[len("file://") :] if self.root.startswith("file://") else self.root
        return "/".join([base.rstrip("/"), *parts])

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and the root's path inside it."""
        if self.is_local:
            return pafs.LocalFileSystem(), os.path.abspath(self.uri())
        parsed = urlparse(self.root)
        if parsed.scheme in ("s3", "s3a"):
            endpoint = _opt(self.options, "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "endpoint")
            scheme = None
            if endpoint:
                ep = urlparse(endpoint)
                scheme, endpoint = ep.scheme or None, ep.netloc or ep.path
            fs = pafs.S3FileSystem(
                access_key=_opt(self.options, "AWS_ACCESS_KEY_ID"),
                secret_key=_opt(self.options, "AWS_SECRET_ACCESS_KEY"),
                session_token=_opt(self.options, "AWS_SESSION_TOKEN"),
                region=_opt(self.options, "AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
                endpoint_override=endpoint,
                scheme=scheme or "https",
            )
            return fs, (parsed.netloc + parsed.path).rstrip("/")
        fs, path = pafs.FileSystem.from_uri(self.root)
        return fs, path.rstrip("/")

    def path(self, *parts: str) -> str:
        """The filesystem path (for :meth:`filesystem`) of a path below the root."""
        _, base = self.filesystem()
        return "/".join([base, *parts])

    def read_text(self, *parts: str) -> str | None:
        """A small text file's content, or None when missing."""
        fs, base = self.filesystem()
        try:
            with fs.open_input_stream("/".join([base, *parts])) as fh:
                return bytes(fh.read()).decode("utf-8")
        except (FileNotFoundError, OSError):
            return None

    def write_text(self, text: str, *parts: str) -> None:
        """Write a small text file atomically where the filesystem allows (local: rename)."""
        fs, base = self.filesystem()
        target = "/".join([base, *parts])
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        if self.is_local:
            tmp = target + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)
            return
        with fs.open_output_stream(target) as out:
            out.write(text.encode("utf-8"))

    def list_dirs(self, *parts: str) -> list[str]:
        """Names of the folders directly below a path (empty when it does not exist)."""
        fs, base = self.filesystem()
        selector = pafs.FileSelector("/".join([base, *parts]), allow_not_found=True)
        return sorted(
            info.base_name
            for info in fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory
        )

    def delete_dir(self, *parts: str) -> None:
        """Remove a folder and everything below it."""
        fs, base = self.filesystem()
        fs.delete_dir("/".join([base, *parts]))
