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

from lakeloom.engines.delta_log import arrow_filesystem

__all__ = ["Storage"]


#: Options that choose how delta-rs makes commits atomic on S3 (the user's choice wins).
_S3_COMMIT_OPTIONS = frozenset(
    {
        "aws_s3_locking_provider",
        "aws_s3_allow_unsafe_rename",
        "conditional_put",
        "aws_conditional_put",
        "copy_if_not_exists",
        "aws_copy_if_not_exists",
    }
)


@dataclass(frozen=True)
class Storage:
    """A root URI (``/path`` or ``s3://bucket/prefix``) plus the options to reach it."""

    root: str
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        """True for a plain folder."""
        return "://" not in self.root or self.root.startswith("file://")

    @property
    def scheme(self) -> str:
        """The URI scheme (``file`` for a plain folder)."""
        return "file" if self.is_local else urlparse(self.root).scheme.lower()

    def delta_options(self) -> dict[str, str]:
        """Storage options for delta-rs: the given ones, plus safe commits on S3.

        On S3, commits use conditional puts (``If-None-Match``: AWS S3, MinIO, R2 and moto
        support it), so concurrent writers never overwrite each other's log entries without a
        DynamoDB lock. Set ``AWS_S3_LOCKING_PROVIDER``, ``AWS_S3_ALLOW_UNSAFE_RENAME`` or
        ``conditional_put`` yourself to choose otherwise.
        """
        options = {str(k): str(v) for k, v in self.options.items()}
        if self.scheme in ("s3", "s3a"):
            chosen = {k.lower() for k in options} | {
                k.lower() for k in os.environ if k.lower() in _S3_COMMIT_OPTIONS
            }
            if not chosen & _S3_COMMIT_OPTIONS:
                options["conditional_put"] = "etag"
        return options

    def uri(self, *parts: str) -> str:
        """The URI of a path below the root."""
        base = self.root[len("file://") :] if self.root.startswith("file://") else self.root
        return "/".join([base.rstrip("/"), *parts])

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and the root's path inside it."""
        return arrow_filesystem(self.uri(), self.options)

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
