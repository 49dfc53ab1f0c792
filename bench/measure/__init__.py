"""What is measured and where: phase timing, memory, steady-state rates, runtime ceilings, roofline, the machine
(environment) and hardware profiles."""
