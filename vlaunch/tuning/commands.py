"""Click commands of the tuning wing, added to the `vlaunch` group by vlaunch.cli."""

COMMANDS: list = []
