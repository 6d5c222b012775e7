"""The one kind of failure render.py reports to the user: invalid input."""


class InputError(Exception):
    """Invalid input: carries one message line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems
