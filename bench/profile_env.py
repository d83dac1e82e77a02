"""Prints a Cargo profile of Cargo.toml as CARGO_PROFILE_RELEASE_* overrides.

`sam build` always runs `cargo lambda build --release`; these environment
variables make that release build use the settings of another profile
(`make sam-build` passes those of `lambda-release`), so the profile in
Cargo.toml stays the one place they are written.

    python3 bench/profile_env.py lambda-release
    -> CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 ...
"""

import pathlib
import sys
import tomllib

SKIPPED = {"inherits", "package", "build-override"}


def overrides(profile: str) -> list[str]:
    manifest = pathlib.Path(__file__).resolve().parent.parent / "Cargo.toml"
    settings = tomllib.loads(manifest.read_text())["profile"][profile]
    out = []
    for key, value in settings.items():
        if key in SKIPPED:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        name = "CARGO_PROFILE_RELEASE_" + key.upper().replace("-", "_")
        out.append(f"{name}={value}")
    return out


if __name__ == "__main__":
    print(" ".join(overrides(sys.argv[1] if len(sys.argv) > 1 else "lambda-release")))
