"""``hwprune report``: (re)write report.md, report.json and report.png of an export folder."""

from __future__ import annotations

import sys
from pathlib import Path

from hwprune.errors import FolderError
from hwprune.manifest import check, replace_files
from hwprune.tempdirs import temp_dir


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="render report.md and report.json for an export folder")
    p.add_argument("dir", metavar="DIR", help="an export folder")
    p.add_argument("--target", help="compare sizes with this chip instead of the export's")
    p.add_argument("--trust-export", action="store_true",
                   help="compile and run the folder's C and hls4ml project as they are (only for folders you trust); "
                        "by default they must equal what hwprune regenerates from the folder's graph and options")
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune.pipeline_int8 import is_int8_export
    from hwprune.report import write_report
    from hwprune.report.int8 import write_int8_report

    directory = Path(args.dir)
    check(directory)
    with temp_dir("report") as tmp:
        if is_int8_export(directory):  # TFLite's int8 dialect: its own C, engines and figures
            write_int8_report(directory, tmp, target=args.target, trust_export=args.trust_export)
        else:
            write_report(directory, target=args.target, into=tmp, trust_export=args.trust_export)
        written = sorted(p.name for p in Path(tmp).iterdir())  # report.png, report_mcu.png too, when drawn
        replace_files(directory, tmp)  # the manifest is rewritten last
    print(f"hwprune report: wrote {', '.join(written)} in {directory}", file=sys.stderr)
    return 0
