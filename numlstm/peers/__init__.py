"""Peer implementations timed beside numlstm, each run in its own child process."""
