"""Pure rules, no I/O: tracks and limits, exit ladders, trigger prices, exit decisions."""
