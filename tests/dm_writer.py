"""A minimal Gatan DigitalMicrograph (DM3/DM4) writer, for test fixtures only.

No DM writer exists in the Python ecosystem and no sample file may be downloaded in tests, so this
writes the documented tag-file layout (header; a root tag group of named/unnamed groups and data
tags; data tags as "%%%%" + info array + payload) with just the tags a microscope's file carries for
a 2-D image: ImageList/<image>/ImageData/{Data, DataType, Dimensions, Calibrations} and ImageTags.
The reader under test (RosettaSciIO) is independent of this code.

Layout per version: DM3 lengths/counts are 4-byte, DM4 8-byte; DM4 also stores each tag's byte
size (8 bytes) after its name. Header fields and info arrays are big-endian; data are written in
the byte order the header declares (little-endian here, as on every Gatan PC).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_SIMPLE = {int: (3, "<i"), float: (7, "<d")}  # DM type codes: 3 = int32, 7 = float64
_ARRAY_TYPES = {np.dtype("float32"): (6, 2), np.dtype("int16"): (2, 1), np.dtype("uint16"): (4, 10),
                np.dtype("float64"): (7, 12), np.dtype("int32"): (3, 7), np.dtype("uint8"): (10, 6)}
# numpy dtype -> (tag element type code, ImageData.DataType code)


class _Writer:
    def __init__(self, version: int):
        if version not in (3, 4):
            raise ValueError(f"DM version must be 3 or 4, not {version}")
        self.version = version
        self.lq = ">q" if version == 4 else ">l"

    def _len(self, n: int) -> bytes:
        return struct.pack(self.lq, n)

    def _data_tag(self, value) -> bytes:
        if isinstance(value, str):
            codes = np.frombuffer(value.encode("utf-16-le"), dtype="<u2")
            info, payload = [20, 4, len(codes)], codes.tobytes()  # array of uint16 characters
        elif isinstance(value, np.ndarray):
            eltype, _ = _ARRAY_TYPES[value.dtype]
            info, payload = [20, eltype, value.size], value.astype(value.dtype.newbyteorder("<")).tobytes()
        else:
            code, fmt = _SIMPLE[type(value)]
            info, payload = [code], struct.pack(fmt, value)
        body = b"%%%%" + self._len(len(info)) + b"".join(self._len(i) for i in info) + payload
        return body

    def _group_body(self, tags: dict) -> bytes:
        out = [b"\x00\x01", self._len(len(tags))]  # is_sorted = 0, is_open = 1, number of tags
        for name, value in tags.items():
            encoded = b"" if name.startswith("_") else name.encode("latin-1")  # "_..." = unnamed
            if isinstance(value, dict):
                tag_id, body = 20, self._group_body(value)
            else:
                tag_id, body = 21, self._data_tag(value)
            out.append(struct.pack(">bH", tag_id, len(encoded)) + encoded)
            if self.version == 4:
                out.append(struct.pack(">q", len(body)))
            out.append(body)
        return b"".join(out)

    def file(self, tags: dict) -> bytes:
        root = self._group_body(tags)
        header_len = 16 if self.version == 4 else 12
        header = struct.pack(">l", self.version) + self._len(header_len + len(root)) + struct.pack(">l", 1)
        return header + root


def write_dm(path: str | Path, image: np.ndarray, pixel_size: float | None, units: str = "nm",
             version: int | None = None, voltage_V: float = 300000.0) -> Path:
    """Write a 2-D (or 3-D stack) image as DM3/DM4 (version from the suffix unless given), recorded at the
    accelerating voltage ``voltage_V``."""
    path = Path(path)
    version = version or (4 if path.suffix.lower() == ".dm4" else 3)
    image = np.ascontiguousarray(image)
    _, datatype = _ARRAY_TYPES[image.dtype]
    dims = image.shape[::-1]  # DM stores x (fastest) first
    scale = float(pixel_size) if pixel_size is not None else 1.0
    unit = units if pixel_size is not None else ""
    calib = {f"_{i}": {"Origin": 0.0, "Scale": scale, "Units": unit} for i in range(len(dims))}
    tags = {
        "ApplicationBounds": np.array([0, 0, 512, 512], dtype="int32"),
        "ImageList": {
            "_0": {
                "ImageData": {
                    "Calibrations": {
                        "Brightness": {"Origin": 0.0, "Scale": 1.0, "Units": "Counts"},
                        "Dimension": calib,
                    },
                    "Data": image.ravel(),
                    "DataType": datatype,
                    "Dimensions": {f"_{i}": int(n) for i, n in enumerate(dims)},
                    "PixelDepth": int(image.dtype.itemsize),
                },
                "ImageTags": {"Microscope Info": {"Voltage": float(voltage_V)}},
                "Name": path.stem,
            }
        },
    }
    path.write_bytes(_Writer(version).file(tags))
    return path
