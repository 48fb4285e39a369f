"""Write an output under a temporary name and rename it only when it is complete.

A crash, an error or Ctrl-C never leaves a half-written file under the final name, and
the input is never overwritten.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from vidcolor.errors import OutputError, UsageError, VidcolorError

log = logging.getLogger("vidcolor")

# OS errors that mean "the output cannot be written there", with what the user can do.
WRITE_FAILURE_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space or write to another disk",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write to another disk",
    errno.EFBIG: "the file is too large for this file system or limit; write to another disk",
    errno.EROFS: "the file system is read-only; write to another folder",
    errno.EACCES: "permission denied; check the folder's permissions or write to another folder",
    errno.EPERM: "permission denied; check the folder's permissions or write to another folder",
}


class OutputWriteError(OutputError, OSError):
    """An output that failed to write for an operating-system reason (full disk, quota,
    read-only file system, permissions). An ``OutputError`` (exit code 4) that is still an
    ``OSError`` for callers that catch those."""


def write_failure(final: str | os.PathLike, exc: OSError) -> OutputWriteError:
    """One line for an OS error met while writing ``final``, saying what to do.

    Args:
        final: the output the user asked for (not its temporary name).
        exc: the OS error.

    Returns:
        An ``OutputWriteError`` carrying the errno of ``exc``.
    """
    advice = WRITE_FAILURE_ADVICE.get(exc.errno) or (exc.strerror or str(exc)).strip().rstrip(".")
    error = OutputWriteError(f"cannot write {final}: {advice}")
    error.errno = exc.errno
    return error


def _same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (resolved paths, or hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(final_path: str | os.PathLike, overwrite: bool = False,
                      input_paths: Sequence[str | os.PathLike] = (), what: str = "output",
                      output_paths: Sequence[str | os.PathLike] = (), example: str = "out.mp4") -> Path:
    """Refuse an output path that would clobber an input, an existing file, or cannot be written.

    Args:
        final_path: where the output should end up.
        overwrite: allow replacing an existing file (never an input).
        input_paths: files the job reads.
        what: how the message names the path (``"output"``, ``"--preview"``, ...).
        output_paths: other files the job writes (a preview must not be the video).
        example: a file name to suggest when ``final_path`` is a folder.

    Returns:
        ``final_path`` as a Path.

    Raises:
        OutputError: with one line saying what to do.
    """
    final = Path(final_path)
    for source in input_paths:
        if _same_file(final, Path(source)):
            raise OutputError(f"{what} {final} is the same file as the input {source}; choose another output name")
    for other in output_paths:
        if _same_file(final, Path(other)):
            raise OutputError(f"{what} {final} is the same file as the output {other}; choose another name")
    if final.is_dir():
        raise OutputError(f"{what} {final} is a directory; give a file name such as {final / example}")
    if final.exists() and not final.is_file():  # --overwrite would replace a device or a pipe
        raise OutputError(f"{what} {final} is not a regular file (a device, pipe or socket); give a file name")
    if final.exists() and not overwrite:
        raise OutputError(f"{what} {final} exists; pass --overwrite to replace it")
    folder = final.parent if str(final.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {final}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {final}: the folder {folder} is not writable")
    return final


# What stills, previews and contact sheets can be written as (OpenCV's image writers).
IMAGE_OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def check_image_output(final_path: str | os.PathLike, overwrite: bool = False,
                       input_paths: Sequence[str | os.PathLike] = (), what: str = "output",
                       output_paths: Sequence[str | os.PathLike] = ()) -> Path:
    """``check_output_path`` for an image, refusing first a type OpenCV cannot write.

    Args:
        final_path: the image to write.
        overwrite: allow replacing an existing file (never an input).
        input_paths: files the job reads (and other files it writes).
        what: how the message names the path (``"output"``, ``"--preview"``, ...).
        output_paths: other files the job writes.

    Returns:
        ``final_path`` as a Path.

    Raises:
        UsageError: an extension that is not an image type we write.
        OutputError: as ``check_output_path``.
    """
    suffix = Path(final_path).suffix.lower()
    if suffix not in IMAGE_OUTPUT_EXTENSIONS:
        raise UsageError(f"{what} {final_path}: cannot write an image as {suffix or 'a file without extension'}; "
                         "use .png, .jpg or .tif")
    return check_output_path(final_path, overwrite, input_paths, what, output_paths, example="out.png")


def temporary_name(final: Path) -> Path:
    """A hidden sibling of ``final`` with the same extension, so muxers still guess the format.

    Args:
        final: the final output path.

    Returns:
        e.g. ``dir/.out.partial-1a2b3c4d.4242.9f86d081.mp4`` for ``dir/out.mp4``: a random tag,
        then the writing process's id and host (``stale_partials`` reads them back).
    """
    return final.with_name(f".{final.stem}.partial-{secrets.token_hex(4)}.{os.getpid()}.{_HOST}{final.suffix}")


# This machine, as temporary names record it (a hash: host names may hold any character).
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def process_alive(pid: int) -> bool:
    """Whether a process of this machine is running (for files and locks left by dead runs).

    Args:
        pid: the process id.

    Returns:
        True when it runs (ours or another user's), False when no such process exists.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but is not ours (EPERM): leave its file alone
    return True


def stale_partials(final: Path) -> list[Path]:
    """Temporary files of ``final`` left by runs on this machine whose process is gone (killed
    by SIGKILL, the OOM killer or a power cut, so their cleanup never ran).

    Files of live runs, of other machines (a shared disk) and older unnamed ones are left alone.

    Args:
        final: the final output path.

    Returns:
        The stale temporary files.
    """
    prefix = f".{final.stem}.partial-"
    try:
        entries = list(final.parent.iterdir())  # a bare name's parent is "."
    except OSError:
        return []
    stale = []
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(final.suffix)):
            continue
        fields = name[len(prefix):len(name) - len(final.suffix)].split(".")
        if len(fields) == 3 and fields[1].isdigit() and fields[2] == _HOST and not process_alive(int(fields[1])):
            stale.append(entry)
    return stale


def _fsync(path: Path) -> None:
    """Flush a finished file to disk so the rename never exposes missing data after a crash."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync; the rename is still atomic
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # cleanup must never hide the original error


def _appeared(temp: Path, final: Path) -> OutputError:
    """The error for a final name taken while this run wrote; the finished work is kept under
    a free visible name beside it (hours of rendering must not go because of a name clash)."""
    for _ in range(100):
        kept = final.with_name(f"{final.stem}.vidcolor-{secrets.token_hex(3)}{final.suffix}")
        if os.path.lexists(kept):
            continue
        try:
            os.rename(temp, kept)  # a fresh random name: a clash with a file made meanwhile is negligible
        except OSError:
            break
        return OutputError(f"{final} appeared while this run was writing it (another run to the same output?), so "
                           f"it was not replaced; this run's result is kept as {kept}")
    return OutputError(f"{final} appeared while this run was writing it (another run to the same output?); "
                       "pass --overwrite to replace it")


def _move_into_place(temp: Path, final: Path, overwrite: bool) -> None:
    """Rename the finished ``temp`` to ``final``, atomically.

    With ``overwrite`` this is ``os.replace``. Without it, a file that appeared under the final
    name while this run was writing (a second run to the same output) must not be replaced:
    ``os.link`` creates the name only if it is free, atomically, then the temporary name goes.
    Where linking fails for another reason (file systems without hard links: FAT, SMB, some
    FUSE mounts), the existence check and ``os.replace`` are used (a narrow race remains there).

    Raises:
        OutputError: the final name is taken (without ``overwrite``; this run's result is then
            kept beside it), or the rename fails.
    """
    try:
        if overwrite:
            os.replace(temp, final)
            return
        try:
            os.link(temp, final)
        except FileExistsError:
            raise _appeared(temp, final) from None
        except OSError:
            if os.path.lexists(final):
                raise _appeared(temp, final) from None
            os.replace(temp, final)
            return
        _remove_quietly(temp)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot rename the finished output to {final}: {exc.strerror or exc}") from exc


@contextmanager
def atomic_output(final_path: str | os.PathLike, overwrite: bool = False,
                  input_paths: Sequence[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; rename it to ``final_path`` on success.

    Args:
        final_path: where the finished file should appear.
        overwrite: replace an existing ``final_path`` (an input is never replaced).
        input_paths: the job's inputs, which the output must not be.

    Returns:
        A context manager yielding the temporary Path to write to. On any exception
        (KeyboardInterrupt included) the temporary file is removed and the exception re-raised.

    Raises:
        OutputError: before yielding, for an output that is an input, exists (without
            ``overwrite``), or lies in a missing or read-only folder; after the block, when
            nothing was written, the rename fails, or (without ``overwrite``) a file appeared
            under the final name meanwhile (it is kept, not replaced). An OS error of the block that means the
            output cannot be written (full disk, quota, read-only, permissions) becomes an
            ``OutputWriteError`` naming the final output.
    """
    final = check_output_path(final_path, overwrite, input_paths)
    for leftover in stale_partials(final):
        log.info("removing %s, left by a run of %s that was killed", leftover.name, final.name)
        _remove_quietly(leftover)
    temp = temporary_name(final)
    try:
        yield temp
        if not temp.exists():
            raise OutputError(f"nothing was written for {final}")
        _fsync(temp)
        _move_into_place(temp, final, overwrite)
    except BaseException as exc:
        _remove_quietly(temp)
        if isinstance(exc, VidcolorError) and len(exc.args) == 1 and str(temp) in str(exc.args[0]):
            # The temporary file is gone: name the output the user asked for.
            exc.args = (str(exc.args[0]).replace(str(temp), str(final)),)
        elif isinstance(exc, OSError) and not isinstance(exc, VidcolorError) and exc.errno in WRITE_FAILURE_ADVICE:
            raise write_failure(final, exc) from exc
        raise
