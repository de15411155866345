"""ARM templates of the façade cluster: step definitions, the mainTemplate composer, the offline checker
and the managed application package builder. Imports nothing outside `core` and `armexpr`."""

from core.arm_templates.checker import check_repository_templates, format_findings
from core.arm_templates.findings import Finding

__all__ = ["Finding", "check_repository_templates", "format_findings"]
