"""floorline.economics"""
