"""Validates the OpenAPI 3.1 document read from standard input with
openapi-spec-validator; prints each problem and exits 1 if there is any."""
import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator

document = json.load(sys.stdin)
try:
    problems = [
        f"{'/'.join(str(p) for p in problem.absolute_path)}: {problem.message}"
        for problem in OpenAPIV31SpecValidator(document).iter_errors()
    ]
except Exception as failure:  # the validator raises on a reference it cannot resolve
    # Its message quotes the whole document: the start says what failed.
    problems = [f"{type(failure).__name__}: {str(failure)[:300]}"]
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
