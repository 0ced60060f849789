_valthree() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="valthree"
                ;;
            valthree,backup)
                cmd="valthree__subcmd__backup"
                ;;
            valthree,check-history)
                cmd="valthree__subcmd__check__subcmd__history"
                ;;
            valthree,cluster)
                cmd="valthree__subcmd__cluster"
                ;;
            valthree,completions)
                cmd="valthree__subcmd__completions"
                ;;
            valthree,demo)
                cmd="valthree__subcmd__demo"
                ;;
            valthree,help)
                cmd="valthree__subcmd__help"
                ;;
            valthree,paxos-compact-ballots)
                cmd="valthree__subcmd__paxos__subcmd__compact__subcmd__ballots"
                ;;
            valthree,restore)
                cmd="valthree__subcmd__restore"
                ;;
            valthree,s3-check)
                cmd="valthree__subcmd__s3__subcmd__check"
                ;;
            valthree,serve)
                cmd="valthree__subcmd__serve"
                ;;
            valthree,workload)
                cmd="valthree__subcmd__workload"
                ;;
            valthree__subcmd__cluster,add-node)
                cmd="valthree__subcmd__cluster__subcmd__add__subcmd__node"
                ;;
            valthree__subcmd__cluster,clock)
                cmd="valthree__subcmd__cluster__subcmd__clock"
                ;;
            valthree__subcmd__cluster,down)
                cmd="valthree__subcmd__cluster__subcmd__down"
                ;;
            valthree__subcmd__cluster,heal)
                cmd="valthree__subcmd__cluster__subcmd__heal"
                ;;
            valthree__subcmd__cluster,help)
                cmd="valthree__subcmd__cluster__subcmd__help"
                ;;
            valthree__subcmd__cluster,kill)
                cmd="valthree__subcmd__cluster__subcmd__kill"
                ;;
            valthree__subcmd__cluster,packet)
                cmd="valthree__subcmd__cluster__subcmd__packet"
                ;;
            valthree__subcmd__cluster,partition)
                cmd="valthree__subcmd__cluster__subcmd__partition"
                ;;
            valthree__subcmd__cluster,pause)
                cmd="valthree__subcmd__cluster__subcmd__pause"
                ;;
            valthree__subcmd__cluster,power-loss)
                cmd="valthree__subcmd__cluster__subcmd__power__subcmd__loss"
                ;;
            valthree__subcmd__cluster,remove-node)
                cmd="valthree__subcmd__cluster__subcmd__remove__subcmd__node"
                ;;
            valthree__subcmd__cluster,restart)
                cmd="valthree__subcmd__cluster__subcmd__restart"
                ;;
            valthree__subcmd__cluster,resume)
                cmd="valthree__subcmd__cluster__subcmd__resume"
                ;;
            valthree__subcmd__cluster,rolling-restart)
                cmd="valthree__subcmd__cluster__subcmd__rolling__subcmd__restart"
                ;;
            valthree__subcmd__cluster,status)
                cmd="valthree__subcmd__cluster__subcmd__status"
                ;;
            valthree__subcmd__cluster,up)
                cmd="valthree__subcmd__cluster__subcmd__up"
                ;;
            valthree__subcmd__cluster__subcmd__clock,bump)
                cmd="valthree__subcmd__cluster__subcmd__clock__subcmd__bump"
                ;;
            valthree__subcmd__cluster__subcmd__clock,help)
                cmd="valthree__subcmd__cluster__subcmd__clock__subcmd__help"
                ;;
            valthree__subcmd__cluster__subcmd__clock,reset)
                cmd="valthree__subcmd__cluster__subcmd__clock__subcmd__reset"
                ;;
            valthree__subcmd__cluster__subcmd__clock,strobe)
                cmd="valthree__subcmd__cluster__subcmd__clock__subcmd__strobe"
                ;;
            valthree__subcmd__cluster__subcmd__clock__subcmd__help,bump)
                cmd="valthree__subcmd__cluster__subcmd__clock__subcmd__help__subcmd__bump"
                ;;
            valthree__subcmd__cluster__subcmd__clock__subcmd__help,help)
                cmd="valthree__subcmd__cluster__subcmd__clock__subcmd__help__subcmd__help"
                ;;
            valthree__subcmd__cluster__subcmd__clock__subcmd__help,reset)
                cmd="valthree__subcmd__cluster__subcmd__clock__subcmd__help__subcmd__reset"
                ;;
            valthree__subcmd__cluster__subcmd__clock__subcmd__help,strobe)
                cmd="valthree__subcmd__cluster__subcmd__clock__subcmd__help__subcmd__strobe"
                ;;
            valthree__subcmd__cluster__subcmd__help,add-node)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__add__subcmd__node"
                ;;
            valthree__subcmd__cluster__subcmd__help,clock)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__clock"
                ;;
            valthree__subcmd__cluster__subcmd__help,down)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__down"
                ;;
            valthree__subcmd__cluster__subcmd__help,heal)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__heal"
                ;;
            valthree__subcmd__cluster__subcmd__help,help)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__help"
                ;;
            valthree__subcmd__cluster__subcmd__help,kill)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__kill"
                ;;
            valthree__subcmd__cluster__subcmd__help,packet)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__packet"
                ;;
            valthree__subcmd__cluster__subcmd__help,partition)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__partition"
                ;;
            valthree__subcmd__cluster__subcmd__help,pause)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__pause"
                ;;
            valthree__subcmd__cluster__subcmd__help,power-loss)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__power__subcmd__loss"
                ;;
            valthree__subcmd__cluster__subcmd__help,remove-node)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__remove__subcmd__node"
                ;;
            valthree__subcmd__cluster__subcmd__help,restart)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__restart"
                ;;
            valthree__subcmd__cluster__subcmd__help,resume)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__resume"
                ;;
            valthree__subcmd__cluster__subcmd__help,rolling-restart)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__rolling__subcmd__restart"
                ;;
            valthree__subcmd__cluster__subcmd__help,status)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__status"
                ;;
            valthree__subcmd__cluster__subcmd__help,up)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__up"
                ;;
            valthree__subcmd__cluster__subcmd__help__subcmd__clock,bump)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__clock__subcmd__bump"
                ;;
            valthree__subcmd__cluster__subcmd__help__subcmd__clock,reset)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__clock__subcmd__reset"
                ;;
            valthree__subcmd__cluster__subcmd__help__subcmd__clock,strobe)
                cmd="valthree__subcmd__cluster__subcmd__help__subcmd__clock__subcmd__strobe"
                ;;
            valthree__subcmd__help,backup)
                cmd="valthree__subcmd__help__subcmd__backup"
                ;;
            valthree__subcmd__help,check-history)
                cmd="valthree__subcmd__help__subcmd__check__subcmd__history"
                ;;
            valthree__subcmd__help,cluster)
                cmd="valthree__subcmd__help__subcmd__cluster"
                ;;
            valthree__subcmd__help,completions)
                cmd="valthree__subcmd__help__subcmd__completions"
                ;;
            valthree__subcmd__help,demo)
                cmd="valthree__subcmd__help__subcmd__demo"
                ;;
            valthree__subcmd__help,help)
                cmd="valthree__subcmd__help__subcmd__help"
                ;;
            valthree__subcmd__help,paxos-compact-ballots)
                cmd="valthree__subcmd__help__subcmd__paxos__subcmd__compact__subcmd__ballots"
                ;;
            valthree__subcmd__help,restore)
                cmd="valthree__subcmd__help__subcmd__restore"
                ;;
            valthree__subcmd__help,s3-check)
                cmd="valthree__subcmd__help__subcmd__s3__subcmd__check"
                ;;
            valthree__subcmd__help,serve)
                cmd="valthree__subcmd__help__subcmd__serve"
                ;;
            valthree__subcmd__help,workload)
                cmd="valthree__subcmd__help__subcmd__workload"
                ;;
            valthree__subcmd__help__subcmd__cluster,add-node)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__add__subcmd__node"
                ;;
            valthree__subcmd__help__subcmd__cluster,clock)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__clock"
                ;;
            valthree__subcmd__help__subcmd__cluster,down)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__down"
                ;;
            valthree__subcmd__help__subcmd__cluster,heal)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__heal"
                ;;
            valthree__subcmd__help__subcmd__cluster,kill)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__kill"
                ;;
            valthree__subcmd__help__subcmd__cluster,packet)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__packet"
                ;;
            valthree__subcmd__help__subcmd__cluster,partition)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__partition"
                ;;
            valthree__subcmd__help__subcmd__cluster,pause)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__pause"
                ;;
            valthree__subcmd__help__subcmd__cluster,power-loss)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__power__subcmd__loss"
                ;;
            valthree__subcmd__help__subcmd__cluster,remove-node)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__remove__subcmd__node"
                ;;
            valthree__subcmd__help__subcmd__cluster,restart)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__restart"
                ;;
            valthree__subcmd__help__subcmd__cluster,resume)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__resume"
                ;;
            valthree__subcmd__help__subcmd__cluster,rolling-restart)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__rolling__subcmd__restart"
                ;;
            valthree__subcmd__help__subcmd__cluster,status)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__status"
                ;;
            valthree__subcmd__help__subcmd__cluster,up)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__up"
                ;;
            valthree__subcmd__help__subcmd__cluster__subcmd__clock,bump)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__clock__subcmd__bump"
                ;;
            valthree__subcmd__help__subcmd__cluster__subcmd__clock,reset)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__clock__subcmd__reset"
                ;;
            valthree__subcmd__help__subcmd__cluster__subcmd__clock,strobe)
                cmd="valthree__subcmd__help__subcmd__cluster__subcmd__clock__subcmd__strobe"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        valthree)
            opts="-h -V --help --version serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__backup)
            opts="-h -V --addrs --cluster --connections --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --addrs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cluster)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --connections)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__check__subcmd__history)
            opts="-h -V --model --html --timeout --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --model)
                    COMPREPLY=($(compgen -W "register dynamo" -- "${cur}"))
                    return 0
                    ;;
                --html)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster)
            opts="-h -V --dir --json --help --version up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__add__subcmd__node)
            opts="-h -V --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__clock)
            opts="-h -V --dir --json --help --version n1 n2 n3 n4 n5 n6 n7 n8 n9 bump strobe reset help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__clock__subcmd__bump)
            opts="-h -V --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__clock__subcmd__help)
            opts="bump strobe reset help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__clock__subcmd__help__subcmd__bump)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__clock__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__clock__subcmd__help__subcmd__reset)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__clock__subcmd__help__subcmd__strobe)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__clock__subcmd__reset)
            opts="-h -V --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__clock__subcmd__strobe)
            opts="-h -V --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__down)
            opts="-h -V --purge --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__heal)
            opts="-h -V --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help)
            opts="up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__add__subcmd__node)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__clock)
            opts="bump strobe reset"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__clock__subcmd__bump)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__clock__subcmd__reset)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__clock__subcmd__strobe)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__down)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__heal)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__kill)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__packet)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__partition)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__pause)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__power__subcmd__loss)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__remove__subcmd__node)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__restart)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__resume)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__rolling__subcmd__restart)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__status)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__help__subcmd__up)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__kill)
            opts="-h -V --dir --json --help --version n1 n2 n3 n4 n5 n6 n7 n8 n9"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__packet)
            opts="-h -V --delay --jitter --loss --duplicate --reorder --seed --dir --json --help --version n1 n2 n3 n4 n5 n6 n7 n8 n9"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --delay)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --jitter)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --loss)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --duplicate)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --reorder)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --seed)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__partition)
            opts="-h -V --shape --seed --refuse --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --shape)
                    COMPREPLY=($(compgen -W "one halves ring bridge one-way" -- "${cur}"))
                    return 0
                    ;;
                --seed)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__pause)
            opts="-h -V --dir --json --help --version n1 n2 n3 n4 n5 n6 n7 n8 n9"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__power__subcmd__loss)
            opts="-h -V --dir --json --help --version n1 n2 n3 n4 n5 n6 n7 n8 n9"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__remove__subcmd__node)
            opts="-h -V --dir --json --help --version n1 n2 n3 n4 n5 n6 n7 n8 n9"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__restart)
            opts="-h -V --dir --json --help --version n1 n2 n3 n4 n5 n6 n7 n8 n9"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__resume)
            opts="-h -V --dir --json --help --version n1 n2 n3 n4 n5 n6 n7 n8 n9"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__rolling__subcmd__restart)
            opts="-h -V --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__status)
            opts="-h -V --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__cluster__subcmd__up)
            opts="-h -V --mode --nodes --base-port --port-offset --fault-fs --dir --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --mode)
                    COMPREPLY=($(compgen -W "s3 paxos raft dynamo" -- "${cur}"))
                    return 0
                    ;;
                --nodes)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --base-port)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --port-offset)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --fault-fs)
                    COMPREPLY=($(compgen -W "off lazy" -- "${cur}"))
                    return 0
                    ;;
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__completions)
            opts="-h -V --help --version bash elvish fish powershell zsh"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__demo)
            opts="-h -V --keep --dir --base-port --json --pace --serve-flag --help --version quorum conflict repair handoff membership failover occ availability linearizability all list"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --base-port)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --pace)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --serve-flag)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help)
            opts="serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__backup)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__check__subcmd__history)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster)
            opts="up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__add__subcmd__node)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__clock)
            opts="bump strobe reset"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__clock__subcmd__bump)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__clock__subcmd__reset)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__clock__subcmd__strobe)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__down)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__heal)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__kill)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__packet)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__partition)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__pause)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__power__subcmd__loss)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__remove__subcmd__node)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__restart)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__resume)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__rolling__subcmd__restart)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__status)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__cluster__subcmd__up)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__completions)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__demo)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__paxos__subcmd__compact__subcmd__ballots)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__restore)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__s3__subcmd__check)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__serve)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__help__subcmd__workload)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__paxos__subcmd__compact__subcmd__ballots)
            opts="-h -V --data-dir --dry-run --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --data-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__restore)
            opts="-h -V --replace --addrs --cluster --connections --json --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --addrs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cluster)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --connections)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__s3__subcmd__check)
            opts="-h -V --s3-endpoint --s3-bucket --s3-region --s3-access-key --s3-secret-key --rounds --writers --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --s3-endpoint)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-bucket)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-region)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-access-key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-secret-key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --rounds)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --writers)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__serve)
            opts="-v -h -V --mode --addr --data-dir --log-format --json --metrics-addr --verbose --requirepass --requirepass-file --maxclients --admin-token --admin-token-file --proto-max-bulk-len --maxmemory-clients --client-output-buffer-limit --tls-port --tls-cert-file --tls-key-file --tls-ca-cert-file --tls-auth-clients --timeout --shutdown-timeout --snapshot-walk-timeout --s3-endpoint --s3-bucket --s3-region --s3-access-key --s3-secret-key --s3-dir --s3-key --unsafe-trust-object-store --s3-batch --s3-value-objects-from --maxmemory --s3-snapshot-keys --unsafe-stale-reads --unsafe-blind-cas --node-id --peer-addr --peer-listen --peers --cluster-secret-file --peer-tls-cert --peer-tls-key --peer-tls-ca --join --fault-fs --unsafe-skip-fsync --paxos-one-rtt --paxos-gc-interval --unsafe-accept-quorum --unsafe-no-ballot-ceiling --stale-reads --raft-snapshot-every --raft-forward-batch --vnodes --replicas --r --w --read-repair --hinted-handoff --max-hints --hint-window --sibling-read --max-siblings --swim-period --sloppy-quorum --aae-interval --aae-max-keys --tombstone-grace --handoff-grace --suspect-timeout --unsafe-lww --unsafe-server-clocks --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --mode)
                    COMPREPLY=($(compgen -W "s3 paxos raft dynamo" -- "${cur}"))
                    return 0
                    ;;
                --addr)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --data-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log-format)
                    COMPREPLY=($(compgen -W "text json" -- "${cur}"))
                    return 0
                    ;;
                --metrics-addr)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --requirepass)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --requirepass-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --maxclients)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --admin-token)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --admin-token-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --proto-max-bulk-len)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --maxmemory-clients)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --client-output-buffer-limit)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-port)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-cert-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-key-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-ca-cert-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-auth-clients)
                    COMPREPLY=($(compgen -W "yes optional no" -- "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --shutdown-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --snapshot-walk-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-endpoint)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-bucket)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-region)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-access-key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-secret-key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-batch)
                    COMPREPLY=($(compgen -W "on off" -- "${cur}"))
                    return 0
                    ;;
                --s3-value-objects-from)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --maxmemory)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --s3-snapshot-keys)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --node-id)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --peer-addr)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --peer-listen)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --peers)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cluster-secret-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --peer-tls-cert)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --peer-tls-key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --peer-tls-ca)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --fault-fs)
                    COMPREPLY=($(compgen -W "off lazy" -- "${cur}"))
                    return 0
                    ;;
                --paxos-one-rtt)
                    COMPREPLY=($(compgen -W "on off" -- "${cur}"))
                    return 0
                    ;;
                --paxos-gc-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --unsafe-accept-quorum)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --raft-snapshot-every)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --raft-forward-batch)
                    COMPREPLY=($(compgen -W "on off" -- "${cur}"))
                    return 0
                    ;;
                --vnodes)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --replicas)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --r)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --w)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --read-repair)
                    COMPREPLY=($(compgen -W "async sync off" -- "${cur}"))
                    return 0
                    ;;
                --hinted-handoff)
                    COMPREPLY=($(compgen -W "on off" -- "${cur}"))
                    return 0
                    ;;
                --max-hints)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --hint-window)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --sibling-read)
                    COMPREPLY=($(compgen -W "pick error" -- "${cur}"))
                    return 0
                    ;;
                --max-siblings)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --swim-period)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --aae-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --aae-max-keys)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tombstone-grace)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --handoff-grace)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --suspect-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        valthree__subcmd__workload)
            opts="-h -V --addrs --cluster --docker --docker-network --nemesis --nemesis-interval --clients --keys --duration --ops --key-prefix --seed --history --mix --timeout --check --html --check-timeout --settle-timeout --json --ready-timeout --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --addrs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cluster)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --docker)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --docker-network)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --nemesis)
                    COMPREPLY=($(compgen -P "${cur%"${cur##*,}"}" -W "kill power-loss pause partition packet membership disk clock all" -- "${cur##*,}"))
                    return 0
                    ;;
                --nemesis-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --clients)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --keys)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --duration)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ops)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --key-prefix)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --seed)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --history)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --mix)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --html)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --check-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --settle-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ready-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _valthree -o nosort -o bashdefault -o default valthree
else
    complete -F _valthree -o bashdefault -o default valthree
fi
