"""floorline.web"""
