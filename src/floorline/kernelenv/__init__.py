"""floorline.kernelenv"""
