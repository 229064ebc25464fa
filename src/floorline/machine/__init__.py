"""floorline.machine"""
