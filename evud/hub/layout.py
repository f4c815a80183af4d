"""The export folder's layout, as `datasets` (videofolder) and the Hub read it:

    data/hf/README.md         the dataset card (evud.hub.card)
    data/hf/metadata.jsonl    one row per record; `file_name` names its clip relative to this folder
    data/hf/clips/<clip_path> the clips, hard links to data/clips (no byte is stored twice)

or, when the clips are not kept locally (`clip.keep_local=false`: only their gs:// copies exist), no clips folder
and a string column `video` holding each clip's gs:// URI. One kind per export: every row has the same columns.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

from evud.hub.inputs import ExportError, ExportItem

CLIPS_DIR = "clips"
METADATA_FILE = "metadata.jsonl"
CARD_FILE = "README.md"

# Where a hard link cannot be made but a copy can: another file system, one without hard links, a file at its
# link limit.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOSYS}


class ClipKind(str, Enum):
    """How the rows name their clips."""

    files = "files"  # clip files in the export; column `file_name`, loaded as a `video` column (feature Video)
    uris = "uris"  # the clips' gs:// URIs; column `video`, a string

    @property
    def column(self) -> str:
        return "file_name" if self is ClipKind.files else "video"

    @property
    def dtype(self) -> str:
        """The dtype of the loaded `video` column in the card's features."""
        return "video" if self is ClipKind.files else "string"


@dataclass
class LinkReport:
    linked: int = 0  # hard links: no new bytes on disk
    copied: int = 0  # copies, where no link could be made
    bytes: int = 0  # the clips' size
    copied_bytes: int = 0  # what the copies added on disk


def local_clip(item: ExportItem, clips_dir: Path) -> Path:
    return clips_dir / item.clip_path


def clip_kind(items: list[ExportItem], clips_dir: Path) -> ClipKind:
    """Files when every clip is local, else URIs when every clip has one; a mix of the two cannot be exported."""
    not_local = [item for item in items if not local_clip(item, clips_dir).is_file()]
    if not not_local:
        return ClipKind.files
    not_uploaded = [item for item in items if not item.clip.clip_uri]
    if not not_uploaded:
        return ClipKind.uris
    neither = [item for item in not_local if not item.clip.clip_uri]
    if neither:
        problem = (f"clip {neither[0].record.id} has neither a local file ({local_clip(neither[0], clips_dir)}) "
                   "nor a gs:// copy")
    else:
        problem = (f"clip {not_local[0].record.id} is only in GCS ({not_local[0].clip.clip_uri}) and clip "
                   f"{not_uploaded[0].record.id} has no gs:// copy")
    raise ExportError(f"{problem}: an export holds either every clip's file or every clip's URI. Restore the clips "
                      "(`dvc checkout data/clips` or `dvc pull data/clips`), or upload every clip (gcs.bucket) and "
                      "run prepare again")


def video_value(item: ExportItem, kind: ClipKind) -> str:
    """The row's video column: the clip's path inside the export, or its gs:// URI."""
    if kind is ClipKind.files:
        return (PurePosixPath(CLIPS_DIR) / item.clip_path).as_posix()
    return item.clip.clip_uri or ""


def data_files(kind: ClipKind, items: list[ExportItem]) -> list[str]:
    """The card's data_files of the train split: the metadata and, with files, the clips (by extension)."""
    if kind is ClipKind.uris:
        return [METADATA_FILE]
    extensions = sorted({PurePosixPath(item.clip_path).suffix for item in items})
    return [METADATA_FILE, *(f"{CLIPS_DIR}/**/*{ext}" for ext in extensions)]


def link_clip(src: Path, dest: Path) -> bool:
    """dest becomes another name of src's file (True), or a copy where no hard link can be made (False).

    A hard link, not evud.clips' reflink-first link_file: data/clips' file is already the store's and DVC's cache's
    file, so one more name of it costs nothing on every local file system."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
        return True
    except OSError as err:
        if err.errno not in _NO_LINK:
            raise
    shutil.copyfile(src, dest)
    return False


def check_size(item: ExportItem, path: Path) -> None:
    """The file is the manifest's clip (its size; hashing every clip again would read the whole dataset)."""
    size = path.stat().st_size
    if item.clip.size_bytes is not None and size != item.clip.size_bytes:
        raise ExportError(f"clip {item.record.id}: {path} has {size} bytes, the manifest says {item.clip.size_bytes}: "
                          "data/clips does not match data/clips.jsonl (`dvc checkout`, or run prepare again)")


def place_clips(items: list[ExportItem], kind: ClipKind, clips_dir: Path, out_dir: Path) -> LinkReport:
    """The export's clips folder, made afresh: links to each clip (files), or none (URIs)."""
    if kind is ClipKind.files:
        for item in items:  # every clip checked before the folder changes
            check_size(item, local_clip(item, clips_dir))
    target = out_dir / CLIPS_DIR
    if target.exists():  # a clip of an earlier export must not be uploaded with this one
        shutil.rmtree(target)
    report = LinkReport()
    if kind is ClipKind.uris:
        return report
    for item in items:
        source = local_clip(item, clips_dir)
        size = source.stat().st_size
        if link_clip(source, target / item.clip_path):
            report.linked += 1
        else:
            report.copied += 1
            report.copied_bytes += size
        report.bytes += size
    return report
