"""benchmarks/_results.py: the command a RESULTS.md section names can be pasted back."""

import shlex

from benchmarks._results import command_line


def test_command_line_keeps_empty_and_spaced_arguments():
    cmd = command_line("onboarding.py", ["--logs", "v0", "--refit-n", "", "--note", "two words"])
    assert cmd == "python benchmarks/onboarding.py --logs v0 --refit-n '' --note 'two words'"
    assert shlex.split(cmd)[2:] == ["--logs", "v0", "--refit-n", "", "--note", "two words"]
