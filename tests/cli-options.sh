#!/bin/sh
# The surplus command line as a user types it: options before the verb,
# after it and after operands; help for every verb; usage errors that say
# what was wrong (exit 64); client settings from the environment and from
# client.conf profiles; the bash completion (verbs, options, files); and
# the no-cgroups warning of `surplus run`, once per host.
. "$top_srcdir/tests/lib.sh"

S() { run "$SURPLUS" "$@"; }
# A URL no daemon answers on: which one was used shows in the error.
dead=https://127.0.0.1:9
printf 'tok\n' > "$tmp/tok"

# ---- options anywhere --------------------------------------------------------
S --url "$dead/a" --token-file "$tmp/tok" list --json > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 75 ] && grep -q "cannot reach surplusd at $dead/a" "$tmp/err"
ok $? "list --json (a global option after the verb) is taken: exit $rc: $(cat "$tmp/err")"
S list -o json --url "$dead/b" --token-file "$tmp/tok" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 75 ] && grep -q "$dead/b" "$tmp/err"
ok $? "list -o json with the remote options after it: exit $rc: $(cat "$tmp/err")"
S --json list --url "$dead/c" --token-file "$tmp/tok" > /dev/null 2> "$tmp/err"
[ $? -eq 75 ] && grep -q "$dead/c" "$tmp/err"
ok $? "the old order (surplus --json list) still works: $(cat "$tmp/err")"
S list -o yaml > /dev/null 2> "$tmp/err"
[ $? -eq 64 ] && grep -q "list: -o/--output 'yaml': expected table or json" "$tmp/err"
ok $? "-o with an unknown format exits 64 and says so: $(cat "$tmp/err")"
S status 0123456789abcdef --url "$dead/d" --token-file "$tmp/tok" > /dev/null 2> "$tmp/err"
[ $? -eq 75 ] && grep -q "$dead/d" "$tmp/err"
ok $? "global options after an operand are taken: $(cat "$tmp/err")"
mkdir -p "$tmp/b1"
printf 'api = 1;\nname = "b1";\ncommand = ["/bin/true"];\n' > "$tmp/b1/job.conf"
S bundle create "$tmp/b1" -o "$tmp/b1.tar.zst" > /dev/null 2> "$tmp/err" &&
    [ -s "$tmp/b1.tar.zst" ]
ok $? "bundle create DIR -o OUT, the order the usage line shows: $(cat "$tmp/err")"
S -o "$tmp/b1b.tar.zst" bundle create "$tmp/b1" > /dev/null 2> "$tmp/err" &&
    [ -s "$tmp/b1b.tar.zst" ]
ok $? "... and with -o before the verb: $(cat "$tmp/err")"
S bundle check -- "$tmp/b1.tar.zst" > "$tmp/out" 2> "$tmp/err" && grep -q ": ok:" "$tmp/out"
ok $? "-- ends the options: $(cat "$tmp/err")"
cp "$tmp/b1.tar.zst" "$tmp/--json"
(cd "$tmp" && S bundle check -- --json) > "$tmp/out" 2> "$tmp/err" && grep -q "^--json: ok:" "$tmp/out"
ok $? "... so an operand may look like an option: $(cat "$tmp/out" "$tmp/err")"

# ---- usage errors say what was wrong -------------------------------------------
usage_err() { # usage_err PATTERN DESCRIPTION -- ARGS...
    pat=$1 what=$2; shift 3
    S "$@" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 64 ] && grep -q -- "$pat" "$tmp/err" && [ ! -s "$tmp/out" ]
    ok $? "$what: exit $rc: $(head -n 1 "$tmp/err")"
}
usage_err "unknown option '--wait' for 'list'" "an option of another verb is named with the verb" -- list --wait
usage_err "unknown or ambiguous option '--nonesuch'" "an unknown option is named" -- --nonesuch list
usage_err "unknown option '-f' for 'status'" "an unknown short option is named" -- status 0123456789abcdef -f
usage_err "status: missing operand ID" "a missing operand is named" -- status
usage_err "status: extra operand 'b'" "an extra operand is named" -- status a b
usage_err "option '--output' needs an argument" "an option without its argument" -- fetch 0123456789abcdef --output
usage_err "unknown verb 'frobnicate'" "an unknown verb" -- frobnicate
usage_err "bundle: expected check or create, not 'pack'" "an unknown bundle command" -- bundle pack x
usage_err "missing verb" "no verb at all" -- --json
usage_err "is not a job id" "a job id that is not hex" -- --url "$dead" --token-file "$tmp/tok" status xyz!

# ---- help ------------------------------------------------------------------------
S help fetch > "$tmp/h1" 2> "$tmp/err" &&
    grep -q '^Usage: surplus fetch \[OPTION\]\.\.\. ID$' "$tmp/h1" &&
    grep -q -- '-o, --output DIR' "$tmp/h1"
ok $? "surplus help fetch shows its usage and options: $(cat "$tmp/h1" "$tmp/err")"
S fetch --help > "$tmp/h2" && cmp -s "$tmp/h1" "$tmp/h2"
ok $? "surplus fetch --help says the same"
S submit 0123 --help > "$tmp/h3" && grep -q -- '--wait' "$tmp/h3" && grep -q -- '--idempotency-key KEY' "$tmp/h3"
ok $? "--help after an operand shows the verb's help"
S help bundle > "$tmp/h4" && grep -q 'surplus bundle check' "$tmp/h4" && grep -q 'surplus bundle create' "$tmp/h4"
ok $? "surplus help bundle shows both bundle commands"
S bundle --help > "$tmp/h5" && cmp -s "$tmp/h4" "$tmp/h5"
ok $? "... and so does surplus bundle --help"
S help list | grep -q -- '--state STATE' && S help list | grep -q -- '--since TIME' &&
    S help list | grep -q -- '--tenant NAME'
ok $? "surplus help list shows the filters"
S help nonesuch > /dev/null 2> "$tmp/err"
[ $? -eq 64 ] && grep -q "help: unknown verb 'nonesuch'" "$tmp/err"
ok $? "help of an unknown verb exits 64: $(cat "$tmp/err")"
# Every verb of --help has help of its own.
bad=
for v in $(S --help | sed -n '/^Verbs:/,/^$/p' | awk 'NR > 1 && NF { print $1 }' | sort -u); do
    S help "$v" > /dev/null 2>&1 || bad="$bad $v"
done
[ -z "$bad" ]
ok $? "every verb in surplus --help has surplus help VERB${bad:+ (not:$bad)}"

# ---- client settings: command line > environment > profile ------------------
mkdir -p "$tmp/home/.config/surplus"
cf="$tmp/home/.config/surplus/client.conf"
printf 'prod-token\n' > "$tmp/home/.config/surplus/prod.tok"
cat > "$cf" <<CONF
current = "prod";
profiles = ( { name = "prod"; url = "$dead/prod"; token_file = "prod.tok"; },
             { name = "dev"; url = "$dead/dev"; token_file = "$tmp/tok"; } );
CONF
P() { HOME="$tmp/home" XDG_CONFIG_HOME= SURPLUS_URL= SURPLUS_TOKEN_FILE= SURPLUS_CACERT= SURPLUS_PROFILE= run "$SURPLUS" "$@"; }
P list > /dev/null 2> "$tmp/err"
[ $? -eq 75 ] && grep -q "$dead/prod" "$tmp/err"
ok $? "the current profile gives the URL, and its relative token_file is found beside client.conf: $(cat "$tmp/err")"
P --profile dev list > /dev/null 2> "$tmp/err"
[ $? -eq 75 ] && grep -q "$dead/dev" "$tmp/err"
ok $? "--profile picks another: $(cat "$tmp/err")"
HOME="$tmp/home" SURPLUS_PROFILE=dev run "$SURPLUS" list > /dev/null 2> "$tmp/err"
grep -q "$dead/dev" "$tmp/err"
ok $? "... and so does SURPLUS_PROFILE: $(cat "$tmp/err")"
HOME="$tmp/home" SURPLUS_URL="$dead/env" run "$SURPLUS" list > /dev/null 2> "$tmp/err"
grep -q "$dead/env" "$tmp/err"
ok $? "SURPLUS_URL beats the profile: $(cat "$tmp/err")"
HOME="$tmp/home" SURPLUS_URL="$dead/env" run "$SURPLUS" list --url "$dead/cmd" > /dev/null 2> "$tmp/err"
grep -q "$dead/cmd" "$tmp/err"
ok $? "--url beats SURPLUS_URL: $(cat "$tmp/err")"
HOME=/nonexistent SURPLUS_URL="$dead/env2" SURPLUS_TOKEN_FILE="$tmp/tok" run "$SURPLUS" list > /dev/null 2> "$tmp/err"
[ $? -eq 75 ] && grep -q "$dead/env2" "$tmp/err"
ok $? "SURPLUS_URL and SURPLUS_TOKEN_FILE alone, without a profile file: $(cat "$tmp/err")"
HOME=/nonexistent SURPLUS_URL="$dead/env3" SURPLUS_TOKEN_FILE="$tmp/tok" SURPLUS_CACERT="$tmp/nonesuch.pem" run "$SURPLUS" list > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "nonesuch.pem" "$tmp/err"
ok $? "SURPLUS_CACERT is used (an unreadable one is a configuration error, 78): $(cat "$tmp/err")"
P --profile nonesuch list > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "$cf:[0-9]*: no profile named 'nonesuch'" "$tmp/err"
ok $? "an unknown profile exits 78 naming the file: $(cat "$tmp/err")"
printf 'current = "prod";\nprofiles = ( { name = "prod"; url = "x" }\n' > "$cf"
P list > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "^surplus: $cf:[23]: " "$tmp/err"
ok $? "a client.conf with a syntax error exits 78 naming file:line: $(cat "$tmp/err")"
printf 'profiles = ( { name = "prod";\n  uri = "x"; } );\ncurrent = "prod";\n' > "$cf"
P list > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "^surplus: $cf:2: unknown key 'uri'" "$tmp/err"
ok $? "an unknown key in a profile exits 78 naming file:line: $(cat "$tmp/err")"
P version > /dev/null 2>&1
ok $? "a broken client.conf does not stop verbs that do not talk to surplusd"

# ---- bash completion ------------------------------------------------------------
comp() { # comp WORD... : the candidates for the last word
    SURPLUS="$SURPLUS" bash -c '
        . "$1/core/cli/completion/surplus"
        shift
        COMP_WORDS=("$SURPLUS" "$@"); COMP_CWORD=$#
        _surplus
        printf "%s\n" "${COMPREPLY[@]}"' bash "$top_srcdir" "$@" 2> "$tmp/comp.err"
}
[ "$(comp su)" = submit ]
ok $? "bash completes a verb: $(comp su | tr '\n' ' ')"
[ "$(comp bundle c | tr '\n' ' ')" = "check create " ]
ok $? "... the bundle commands: $(comp bundle c | tr '\n' ' ')"
[ "$(comp logs --fo)" = --follow ]
ok $? "... a verb's option: $(comp logs --fo | tr '\n' ' ')"
comp list --s | grep -qx -- --state && comp list --s | grep -qx -- --socket
ok $? "... verb and global options together: $(comp list --s | tr '\n' ' ')"
comp list --state r | grep -qx running
ok $? "... the states of --state"
mkdir -p "$tmp/cdir" && touch "$tmp/cdir/job1.tar.zst"
[ "$(comp submit "$tmp/cdir/jo")" = "$tmp/cdir/job1.tar.zst" ]
ok $? "... file names for a bundle: $(comp submit "$tmp/cdir/jo")"
# The completion's lists come from the same table as surplus help.
for v in submit list logs fetch run; do
    for o in $(S help $v | sed -n 's/^ *\(-., \)\{0,1\}\(--[a-z-]*\).*/\2/p'); do
        comp $v "$o" | grep -qx -- "$o" || bad="$bad $v:$o"
    done
done
[ -z "$bad" ]
ok $? "every option surplus help shows is completed${bad:+ (not:$bad)}"

# ---- zsh completion: the same candidates through compadd --------------------------
zcomp() { # zcomp WORD... : what the zsh function offers for the last word
    PATH="$(dirname "$SURPLUS"):$PATH" zsh -f -c '
        compadd() { [[ $1 == -a ]] && print -l -- ${(P)2}; }
        _files() { print ":files $*"; }
        words=(surplus "${@:2}"); CURRENT=${#words}
        source "$1/core/cli/completion/_surplus"' zsh "$top_srcdir" "$@" 2> "$tmp/zcomp.err"
}
if command -v zsh > /dev/null; then
    zcomp su | grep -qx submit && zcomp su | grep -qx list
    ok $? "zsh offers the verbs (compadd filters by prefix): $(zcomp su | tr '\n' ' ' | cut -c1-60)"
    zcomp list --s | grep -qx -- --state && zcomp logs --f | grep -qx -- --follow
    ok $? "... a verb's options"
    [ "$(zcomp submit x)" = ":files " ]
    ok $? "... file names for a bundle: $(zcomp submit x) $(cat "$tmp/zcomp.err")"
else
    skip "zsh completion offers verbs" "no zsh"
    skip "zsh completion offers options" "no zsh"
    skip "zsh completion offers files" "no zsh"
fi

# ---- surplus run: the no-cgroups warning once per host -----------------------
if [ "$(id -u)" -ne 0 ] || ! unshare -mpinu --fork true 2>/dev/null; then
    skip "the no-cgroups warning is shown once per host" "surplus run needs root and namespaces"
else
    cat > "$tmp/run.conf" <<CONF
state_dir = "$tmp/state";
sandbox = { uid_base = 341000; limits = "best-effort"; };
CONF
    for i in 1 2 3; do
        v=; [ $i -eq 3 ] && v=-v
        (cd "$tmp" && SURPLUS_NO_CGROUP=1 run "$SURPLUS" run $v -c "$tmp/run.conf" "$tmp/b1.tar.zst" -o "$tmp/o$i" > /dev/null 2> "$tmp/run$i.err")
        echo $? > "$tmp/run$i.rc"
    done
    [ "$(cat "$tmp/run1.rc")" = 0 ] && grep -q "warning: no cgroups" "$tmp/run1.err"
    ok $? "the first job on a host without cgroups says limits are best-effort: $(head -n 1 "$tmp/run1.err")"
    [ "$(cat "$tmp/run2.rc")" = 0 ] && ! grep -q "cgroups" "$tmp/run2.err"
    ok $? "the second does not: $(cat "$tmp/run2.err" | head -n 2)"
    grep -q "warning: no cgroups" "$tmp/run3.err"
    ok $? "-v says it again"
fi

done_testing
