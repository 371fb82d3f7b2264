# shellcheck shell=bash
# Writes a JUnit XML report from shell checks, the same machine-readable format pytest, Surefire and node's test
# runner write, so scripts/test-summary.py counts every suite one way. Source it, then:
#   junit_begin FILE SUITE        # start a report
#   junit_case NAME pass|fail|skip [MESSAGE]
#   junit_end                     # write FILE
# Nothing is written before junit_end; a suite that dies first is counted as failed by its exit status.

_junit_file=""
_junit_suite=""
_junit_cases=""

_junit_escape() {
    local s="$1"
    s="${s//&/&amp;}"; s="${s//</&lt;}"; s="${s//>/&gt;}"; s="${s//\"/&quot;}"
    printf '%s' "$s"
}

junit_begin() {
    _junit_file="$1"; _junit_suite="$2"; _junit_cases=""
}

junit_case() {
    local name message
    name="$(_junit_escape "$1")"; message="$(_junit_escape "${3:-}")"
    case "$2" in
        pass) _junit_cases+="  <testcase classname=\"$_junit_suite\" name=\"$name\"/>"$'\n' ;;
        fail) _junit_cases+="  <testcase classname=\"$_junit_suite\" name=\"$name\"><failure message=\"$message\"/></testcase>"$'\n' ;;
        skip) _junit_cases+="  <testcase classname=\"$_junit_suite\" name=\"$name\"><skipped message=\"$message\"/></testcase>"$'\n' ;;
        *) echo "junit_case: status must be pass, fail or skip, not '$2'" >&2; return 2 ;;
    esac
    printf '%s: %s%s\n' "$2" "$1" "${3:+ — $3}" >&2
}

junit_end() {
    mkdir -p "$(dirname "$_junit_file")"
    printf '<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="%s">\n%s</testsuite>\n' \
        "$_junit_suite" "$_junit_cases" >"$_junit_file"
}
