"""Reader for a TIMIT copy the user owns (LDC93S1): NIST SPHERE audio, .PHN labels, the split.

Layout: `<root>/TRAIN|TEST/DR1..DR8/<speaker>/<sentence>.WAV` with a `.PHN` beside each
(upper or lower case; `<root>` may also hold a single `TIMIT/` folder around them). The
split is the one of Greff et al. (after Graves & Schmidhuber 2005 / Halberstadt 1998):

- train: every TRAIN utterance except the dialect sentences SA1/SA2 (462 speakers, 3,696);
- valid: the SI/SX utterances of 50 non-core TEST speakers (400; Halberstadt's dev set);
- test:  the SI/SX utterances of the 24 core-test speakers (192).

SPHERE headers are parsed here by hand: the format is a fixed 1024-byte ASCII header, and
the maintained readers (sph2pipe, sox) are programs rather than Python libraries. Files in
RIFF/WAVE form (some redistributions convert them) are read with scipy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .phones import TIMIT61

# The 24 speakers of the core test set (2 men and 1 woman from each dialect region).
CORE_TEST_SPEAKERS: tuple[str, ...] = (
    "mdab0", "mwbt0", "felc0", "mtas1", "mwew0", "fpas0", "mjmp0", "mlnt0", "fpkt0",
    "mlll0", "mtls0", "fjlm0", "mbpm0", "mklt0", "fnlp0", "mcmj0", "mjdh0", "fmgd0",
    "mgrt0", "mnjm0", "fdhc0", "mjln0", "mpam0", "fmld0",
)

# The 50 non-core test speakers of the standard development set (Halberstadt 1998).
DEV_SPEAKERS: tuple[str, ...] = (
    "faks0", "fdac1", "fjem0", "mgwt0", "mjar0", "mmdb1", "mmdm2", "mpdf0", "fcmh0",
    "fkms0", "mbdg0", "mbwm0", "mcsh0", "fadg0", "fdms0", "fedw0", "mgjf0", "mglb0",
    "mrtk0", "mtaa0", "mtdt0", "mthc0", "mwjg0", "fnmr0", "frew0", "fsem0", "mbns0",
    "mmjr0", "mdls0", "mdlf0", "mdvc0", "mers0", "fmah0", "fdrw0", "mrcs0", "mrjm4",
    "fcal1", "mmwh0", "fjsj0", "majc0", "mjsw0", "mreb0", "fgjd0", "fjmg0", "mroa0",
    "mteb0", "mjfc0", "mrjr0", "fmml0", "mrws1",
)
assert len(CORE_TEST_SPEAKERS) == 24 and len(DEV_SPEAKERS) == 50
assert not set(CORE_TEST_SPEAKERS) & set(DEV_SPEAKERS)

# Sizes of the split on the full corpus.
FULL_SIZES = {"train": 3696, "valid": 400, "test": 192}

SPHERE_HEADER_MIN = 1024
SENTENCE = re.compile(r"s[aix]\d+")


class TimitFormatError(ValueError):
    """A TIMIT file that is not in the expected format; the message names the file."""


@dataclass(frozen=True)
class Utterance:
    """One TIMIT recording: where its files are and whose it is."""

    split: str  # train | valid | test
    dialect: str  # dr1 .. dr8
    speaker: str  # e.g. fcjf0 (lower case)
    sentence: str  # e.g. si1027 (lower case)
    wav: Path
    phn: Path

    @property
    def id(self) -> str:
        return f"{self.speaker}_{self.sentence}"


# -- NIST SPHERE ---------------------------------------------------------------------------
def read_sphere_header(path: Path, raw: bytes) -> tuple[dict[str, int | float | str], int]:
    """Parse a NIST SPHERE header: (fields, header size in bytes)."""
    if not raw.startswith(b"NIST_1A"):
        raise TimitFormatError(f"{path}: not a NIST SPHERE file (no 'NIST_1A' magic)")
    lines = raw[:SPHERE_HEADER_MIN].split(b"\n")
    try:
        size = int(lines[1].strip())
    except (IndexError, ValueError) as e:
        raise TimitFormatError(f"{path}: SPHERE header size line is not a number") from e
    if size < 16 or size > len(raw):
        raise TimitFormatError(f"{path}: SPHERE header size {size} does not fit the file "
                               f"({len(raw)} bytes)")
    fields: dict[str, int | float | str] = {}
    text = raw[:size].decode("ascii", errors="replace").split("\n")[2:]
    for line in text:
        line = line.rstrip("\r")
        if line.strip() == "end_head":
            return fields, size
        if not line.strip() or line.startswith(";"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[1].startswith("-"):
            raise TimitFormatError(f"{path}: malformed SPHERE header line {line!r}")
        name, kind, value = parts
        try:
            if kind == "-i":
                fields[name] = int(value)
            elif kind == "-r":
                fields[name] = float(value)
            elif kind.startswith("-s"):
                fields[name] = value[: int(kind[2:])] if kind[2:].isdigit() else value
            else:
                raise ValueError(kind)
        except ValueError as e:
            raise TimitFormatError(f"{path}: bad SPHERE header field {line!r}") from e
    raise TimitFormatError(f"{path}: SPHERE header has no 'end_head' within {size} bytes")


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples (float64, 16-bit scale) and sample rate of a TIMIT .WAV (SPHERE or RIFF)."""
    raw = Path(path).read_bytes()
    if raw.startswith(b"RIFF"):
        from scipy.io import wavfile

        try:
            rate, data = wavfile.read(path)
        except ValueError as e:
            raise TimitFormatError(f"{path}: unreadable RIFF/WAVE file ({e})") from e
        if data.ndim != 1 or data.dtype != np.int16:
            raise TimitFormatError(f"{path}: expected mono 16-bit PCM, got {data.dtype} "
                                   f"with shape {data.shape}")
        return data.astype(np.float64), int(rate)
    fields, size = read_sphere_header(path, raw)
    coding = str(fields.get("sample_coding", "pcm"))
    if "shorten" in coding:
        raise TimitFormatError(
            f"{path}: SPHERE audio is shorten-compressed ({coding}); decompress the corpus "
            "first, e.g. `sph2pipe -f sph in.wav out.wav` or `sox in.wav -e signed out.wav`")
    if coding != "pcm":
        raise TimitFormatError(f"{path}: unsupported SPHERE sample_coding {coding!r} "
                               "(expected 16-bit 'pcm')")
    for key in ("sample_count", "sample_rate"):
        if key not in fields:
            raise TimitFormatError(f"{path}: SPHERE header lacks {key!r}")
    width = int(fields.get("sample_n_bytes", 2))
    channels = int(fields.get("channel_count", 1))
    if width != 2 or channels != 1:
        raise TimitFormatError(f"{path}: expected mono 16-bit samples, header says "
                               f"{channels} channel(s) of {width} byte(s)")
    order = str(fields.get("sample_byte_format", "01"))
    if order not in ("01", "10"):
        raise TimitFormatError(f"{path}: unknown sample_byte_format {order!r}")
    count = int(fields["sample_count"])
    body = raw[size:size + 2 * count]
    if len(body) != 2 * count:
        raise TimitFormatError(f"{path}: header promises {count} samples, file holds "
                               f"{(len(raw) - size) // 2}")
    data = np.frombuffer(body, dtype="<i2" if order == "01" else ">i2")
    return data.astype(np.float64), int(fields["sample_rate"])


# -- .PHN ----------------------------------------------------------------------------------
def read_phn(path: Path) -> list[tuple[int, int, str]]:
    """(start, end, phone) triples of a .PHN file, sample offsets, checked for sanity."""
    out: list[tuple[int, int, str]] = []
    for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise TimitFormatError(f"{path}:{number}: expected 'start end phone', got {line!r}")
        try:
            start, end = int(parts[0]), int(parts[1])
        except ValueError as e:
            raise TimitFormatError(f"{path}:{number}: sample offsets must be integers: "
                                   f"{line!r}") from e
        phone = parts[2].lower()
        if phone not in TIMIT61:
            raise TimitFormatError(f"{path}:{number}: unknown phone {parts[2]!r} (expected one "
                                   "of the 61 TIMIT phones)")
        if end <= start or start < 0:
            raise TimitFormatError(f"{path}:{number}: segment end {end} not after start {start}")
        if out and start < out[-1][0]:
            raise TimitFormatError(f"{path}:{number}: segments out of order")
        out.append((start, end, phone))
    if not out:
        raise TimitFormatError(f"{path}: no phone segments")
    return out


# -- the tree and the split ----------------------------------------------------------------
def _child(folder: Path, name: str) -> Path | None:
    """The entry of `folder` called `name`, ignoring case (TIMIT copies differ)."""
    for p in folder.iterdir():
        if p.name.lower() == name.lower():
            return p
    return None


def find_root(path: str | Path) -> Path:
    """The folder holding TRAIN/ and TEST/ (itself, or a single TIMIT/ or data/ inside)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"TIMIT path {root} is not a folder (set path=/your/TIMIT)")
    for cand in (root, _child(root, "TIMIT"), _child(root, "data")):
        if cand is not None and cand.is_dir() and _child(cand, "TRAIN") and _child(cand, "TEST"):
            return cand
    raise FileNotFoundError(f"{root}: no TRAIN/ and TEST/ folders (expected the TIMIT layout "
                            "TRAIN|TEST/DR*/<speaker>/*.WAV with .PHN files)")


def list_utterances(path: str | Path) -> dict[str, list[Utterance]]:
    """The paper's split of a TIMIT tree: {"train", "valid", "test"} -> utterances."""
    root = find_root(path)
    core, dev = set(CORE_TEST_SPEAKERS), set(DEV_SPEAKERS)
    splits: dict[str, list[Utterance]] = {"train": [], "valid": [], "test": []}
    for part in ("TRAIN", "TEST"):
        base = _child(root, part)
        assert base is not None
        for dr in sorted(p for p in base.iterdir() if p.is_dir()):
            if not re.fullmatch(r"dr\d", dr.name.lower()):
                continue
            for spk in sorted(p for p in dr.iterdir() if p.is_dir()):
                speaker = spk.name.lower()
                if part == "TRAIN":
                    split = "train"
                elif speaker in core:
                    split = "test"
                elif speaker in dev:
                    split = "valid"
                else:
                    continue
                for wav in sorted(spk.iterdir()):
                    # <sentence>.WAV only (skips e.g. converted copies named SX3.WAV.wav)
                    if wav.suffix.lower() != ".wav" or not SENTENCE.fullmatch(wav.stem.lower()):
                        continue
                    if wav.stem.lower().startswith("sa"):  # dialect sentences: left out
                        continue
                    phn = next((p for p in spk.iterdir() if p.stem == wav.stem
                                and p.suffix.lower() == ".phn"), None)
                    if phn is None:
                        raise FileNotFoundError(f"{wav}: no .PHN label file beside it")
                    splits[split].append(Utterance(split, dr.name.lower(), speaker,
                                                   wav.stem.lower(), wav, phn))
    for split, utts in splits.items():
        if not utts:
            raise FileNotFoundError(f"{root}: no utterances for the {split} split (train: "
                                    "TRAIN/; valid: 50 dev speakers; test: 24 core speakers)")
    return splits


# -- writers (fixtures, and putting other recordings into the TIMIT layout) ------------------
def write_sphere(path: str | Path, samples: np.ndarray, sample_rate: int = 16000,
                 byte_format: str = "01") -> Path:
    """Write 16-bit mono PCM as a NIST SPHERE file with TIMIT's 1024-byte header."""
    data = np.clip(np.round(np.asarray(samples)), -32768, 32767)
    fields = [("database_id", "-s5", "TIMIT"), ("channel_count", "-i", "1"),
              ("sample_count", "-i", str(len(data))),
              ("sample_rate", "-i", str(sample_rate)),
              ("sample_min", "-i", str(int(data.min()) if len(data) else 0)),
              ("sample_max", "-i", str(int(data.max()) if len(data) else 0)),
              ("sample_n_bytes", "-i", "2"),
              ("sample_byte_format", f"-s{len(byte_format)}", byte_format),
              ("sample_sig_bits", "-i", "16")]
    text = "NIST_1A\n   1024\n" + "".join(f"{k} {t} {v}\n" for k, t, v in fields) + "end_head\n"
    header = text.encode("ascii").ljust(SPHERE_HEADER_MIN, b" ")
    body = data.astype("<i2" if byte_format == "01" else ">i2").tobytes()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(header + body)
    return p


def write_phn(path: str | Path, segments: list[tuple[int, int, str]]) -> Path:
    """Write (start, end, phone) segments as a TIMIT .PHN file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(f"{s} {e} {ph}\n" for s, e, ph in segments))
    return p
