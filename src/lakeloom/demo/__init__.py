"""``lakeloom demo``: run the churn pipeline (``examples/churn/pipeline.toml``) in a workspace.

The demo copies nothing: it runs the same file users copy as their template, then sums up
what the run made from the run log (so steps added to the pipeline show up by themselves).
"""

from lakeloom.demo.run import DemoModel, DemoResult, OutputTable, pipeline_path, run_demo

__all__ = ["DemoModel", "DemoResult", "OutputTable", "pipeline_path", "run_demo"]
