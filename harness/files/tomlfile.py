"""Reading user TOML files (configs, policies, catalogs) with one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.contract.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def read_toml(path: Path | str, kind: str, text: str | None = None) -> dict[str, Any]:
    """Parse ``path`` (or ``text`` named ``path``); :class:`UserError` naming the file otherwise."""
    try:
        return tomllib.loads(text if text is not None else Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such {kind} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read {kind} ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
