"""Small helpers that several parts of the project share, each with one home.

    daemon.py     background processes: pid files, clean stop, kill -9, who holds a port (standard library only)
    logs.py       the log format of the project's commands
    polling.py    wait for a condition until a deadline (wait_until)
    processes.py  this machine's processes from /proc: pids, command lines, states, the tree of children
    timefmt.py    a whole UTC minute from the command line, a UTC timestamp literal for Spark SQL
"""
