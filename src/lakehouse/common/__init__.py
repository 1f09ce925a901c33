"""Small helpers that several parts of the project share, each with one home.

    daemon.py   background processes: pid files, clean stop, kill -9, who holds a port (standard library only)
"""
