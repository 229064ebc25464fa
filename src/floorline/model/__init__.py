"""floorline.model"""
