"""Honest candidates that wrap floorline's own kernels (floorline.kernels), adapting the task's layout with
glue only (views, dtype copies, allocation): the work is the floorline kernel's."""
