"""The trainer stage: streaming token loader, FSDP2 training, DCP checkpoints and metrics.

`shards` reads token directories and splits them into read units; `loader` packs them into
sequences with an exact-resume state; `config` parses training jobs; `parallelize` applies
activation checkpointing, compile and FSDP2; `optim` the optimizer and schedule; `step` the
loss and one optimizer step; `checkpoint` DCP checkpoints; `metrics` throughput, MFU and
where they are written; `trainer` the loop; `commands` the `winnow train` command.
Launch with `winnow train JOB` or `torchrun ... -m train JOB`.
"""
