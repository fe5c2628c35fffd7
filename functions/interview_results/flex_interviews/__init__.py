"""The interview_results function: interview sessions, their results and question templates
(SPEC.md, "Interview API").

handler (Powertools routes) -> service (the session state machine, rules, one transaction per
request) -> store (SQL).
"""
