"""The exit-ladder keeper (SPEC §3): a trigger index per token, the exit decision, firing, leadership."""
