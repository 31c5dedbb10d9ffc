"""The report of an export folder: what verification found and the figures around it
(sizes, work, energy proxy, FPGA resources, the Cortex-M firmware's cycles), as report.json,
report.md and plots.

    build.py     build_report (verification + figures), analyze, write_report
    tables.py    per-layer storage and work, FPGA weight memory, the energy proxy's section
    markdown.py  report.md and report.png
    mcu.py       the firmware's figures, the all-dense baseline, the fit check
    energy.py    the energy proxy's table and bars
    graph.py     a drawing of a graph with branches
"""

from hwprune.report.build import (PRODUCER_KEYS, REPORT_JSON, REPORT_MD, REPORT_PNG, analyze, build_report,
                                  json_default, write_report)
from hwprune.report.markdown import render_markdown, render_plot

__all__ = ["PRODUCER_KEYS", "REPORT_JSON", "REPORT_MD", "REPORT_PNG", "analyze", "build_report", "json_default",
           "write_report", "render_markdown", "render_plot"]
