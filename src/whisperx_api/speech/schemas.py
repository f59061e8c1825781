from __future__ import annotations

from dataclasses import dataclass

from litestar.datastructures import UploadFile


@dataclass
class ProbeForm:
    file: UploadFile
