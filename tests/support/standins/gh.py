"""Stand-in `gh`: `gh pr list --repo R --state open --limit N --json number` answers the open pull requests in
$STANDIN_WORKSPACE/open_prs.json, as `[{"number": N}, ...]` (cli/cli pkg/cmd/pr/list: --json prints an array of the
named fields). It needs GH_TOKEN, as gh does in Actions. Every call is recorded like the databricks stand-in's."""

import json
import os
import sys
from pathlib import Path

WORKSPACE = Path(os.environ["STANDIN_WORKSPACE"])


def main(argv: list[str]) -> int:
    with (WORKSPACE / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"argv": ["gh", *argv], "client_id": os.environ.get("DATABRICKS_CLIENT_ID", "")}) + "\n")
    if not os.environ.get("GH_TOKEN"):
        print(
            "gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable.",
            file=sys.stderr,
        )
        return 4
    if argv[:2] != ["pr", "list"] or "--state" not in argv or argv[argv.index("--state") + 1] != "open":
        print(f"the stand-in does not know gh {' '.join(argv)}", file=sys.stderr)
        return 1
    numbers = json.loads((WORKSPACE / "open_prs.json").read_text())
    print(json.dumps([{"number": n} for n in numbers]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
