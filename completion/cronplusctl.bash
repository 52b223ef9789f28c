# bash completion for cronplusctl: subcommands, and job names from the daemon or the config.

_cronplusctl() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local commands="status history logs run retry pause resume next check reload runs events web version health nodes jobs import"
    local -a global=()
    local command="" i word
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        case "$word" in
            -c|--config|--state-dir|--runtime-dir)
                global+=("$word" "${COMP_WORDS[i + 1]}")
                ((i++))
                ;;
            --user) global+=("$word") ;;
            -*) ;;
            *) [ -z "$command" ] && command="$word" ;;
        esac
    done
    if [ -z "$command" ]; then
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W "-c --config --user --state-dir --runtime-dir --version --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi
    case "$command" in
        status|history|run|retry|pause|resume|next)
            if [[ "$cur" == -* ]]; then
                COMPREPLY=($(compgen -W "--json --all --failed --chain --expr --schedule --tz --name --start --end --after -n --marks" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$(cronplusctl "${global[@]}" jobs 2>/dev/null)" -- "$cur"))
            fi
            ;;
        check)
            if [[ "$cur" == -* ]]; then
                COMPREPLY=($(compgen -W "--strict" -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            ;;
        runs)
            if [ "${COMP_WORDS[COMP_CWORD - 1]}" = "--job" ]; then
                COMPREPLY=($(compgen -W "$(cronplusctl "${global[@]}" jobs 2>/dev/null)" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "--hours --job -n --json" -- "$cur"))
            fi
            ;;
        events) COMPREPLY=($(compgen -W "--after --follow --json" -- "$cur")) ;;
        web) COMPREPLY=($(compgen -W "--listen" -- "$cur")) ;;
        import) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _cronplusctl cronplusctl
