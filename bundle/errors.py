"""The failures render.py reports to the user: one line per problem, never a traceback."""


class InputError(Exception):
    """Invalid input (values, .env, the output directory): one message line per problem; exit 1."""

    exit_code = 1

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class UsageError(InputError):
    """A command line that cannot work (e.g. --output naming a file); exit 2."""

    exit_code = 2
