"""nbgrader configuration: the repository root is the course directory.

Instructor sources live in solutions/<id>/<id>.ipynb; `nbgrader generate_assignment <id>`
writes the student copy to notebooks/<id>/<id>.ipynb.
"""

c = get_config()  # noqa: F821 (injected by nbgrader)

c.CourseDirectory.course_id = "cnn-architectures"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "data"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Student copies ship without outputs so they stay small and diff-able.
c.ClearOutputPreprocessor.enabled = True

# A runaway cell (infinite loop, huge sleep) is interrupted and graded as failed. The one
# cell timeout of the course: nbgrader's own commands and `python -m course_utils.grading`
# (unless --cell-timeout says otherwise) both read it from here.
c.ExecutePreprocessor.timeout = 120
c.ExecutePreprocessor.interrupt_on_timeout = True
