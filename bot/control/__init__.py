"""Operator control: `python -m bot ctl ...` talking to the running bot over a loopback endpoint."""
