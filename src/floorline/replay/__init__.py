"""floorline.replay"""
